"""JSON reading and crash-safe writing (the only cache format used: never pickle)."""
import json
import os

from engine.stale_temp_files import temp_name
from engine.user_errors import DiskFull, reporting_disk_full


def read_json(path):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def write_json_atomic(path, obj, indent=None):
    """Write via a temp file + rename so readers never see a half-written file.

    The temp is ``.<name>.<12 hex>.tmp`` (what ``remove_stale_temp_files`` clears after
    a kill) and is created with mode 0666 minus the umask, so caches in a shared data
    root stay readable by the group that shares it (mkstemp would force 0600).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, temp_name(os.path.basename(path)))
    try:
        with reporting_disk_full(path):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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
    except (OSError, DiskFull) as exc:
        print(f"Warning: could not write cache {path} ({exc}); continuing without it")
        return False
