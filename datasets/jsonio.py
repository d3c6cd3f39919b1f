"""JSON reading and crash-safe writing (the only cache format used: never pickle)."""
import json
import os
import tempfile


def read_json(path):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def write_json_atomic(path, obj, indent=None):
    """Write via a temp file + rename so readers never see a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=indent, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def try_write_json_atomic(path, obj, indent=None):
    """Like write_json_atomic but a read-only data folder only costs a warning (caches are optional)."""
    try:
        write_json_atomic(path, obj, indent=indent)
        return True
    except OSError as exc:
        print(f"Warning: could not write cache {path} ({exc}); continuing without it")
        return False
