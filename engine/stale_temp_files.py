"""Remove what interrupted atomic writes left behind: ``.<name>.<12 hex>.tmp`` files and folders.

Every atomic writer of the toolbox (checkpoints, JSON caches and split files, the
generated demo folder) writes ``.<final name>.<12 hex digits>.tmp`` next to its target
and renames it into place; a kill between the two leaves the temp behind, hidden but
taking space (a checkpoint's can be gigabytes). At the next start, a temp is removed
when it is older than this process, so a writer that started after us is never
touched, and no live process holds a file open in it (Linux's /proc is consulted), so
a writer that started earlier and is still going is not touched either.
"""
import os
import re
import shutil
import time
import uuid

TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[0-9a-f]{12}\.tmp$")
_PROC = "/proc"


def temp_name(target_name: str, token: str = None) -> str:
    """The temp name an atomic write of ``target_name`` uses (``token``: 12 hex digits,
    a fresh random one by default)."""
    if token is None:
        token = uuid.uuid4().hex[:12]
    return f".{target_name}.{token}.tmp"


def remove_stale_temp_files(folder, depth=0, started_before=None):
    """Remove stale atomic-write temps in ``folder`` (and ``depth`` levels of sub-folders).

    ``started_before`` (seconds since the epoch; default: when this process started)
    bounds the modification time of what may be removed. Prints one line when something
    was removed and returns the removed paths; a missing folder or a temp that cannot be
    removed is skipped.
    """
    cutoff = process_start_time() if started_before is None else started_before
    candidates = [path for path in _matching(folder, depth) if _last_modified(path) < cutoff]
    if not candidates:
        return []
    held = _paths_held_open()
    removed = []
    for path in candidates:
        if _is_held(path, held):
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError:
            continue
        removed.append(path)
    if removed:
        print(f"Removed {len(removed)} temp file(s) of interrupted writes in {folder}: "
              f"{', '.join(os.path.relpath(p, folder) for p in removed[:3])}{', ...' if len(removed) > 3 else ''}")
    return removed


def process_start_time() -> float:
    """When this process started (Linux: from /proc), else when this module was imported."""
    try:
        with open(os.path.join(_PROC, "self", "stat")) as f:
            # field 22, after the parenthesised command name (which may hold spaces)
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open(os.path.join(_PROC, "stat")) as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED_AT


def _matching(folder, depth):
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if TEMP_NAME.match(entry.name):
            yield entry.path
        elif depth > 0 and entry.is_dir(follow_symlinks=False):
            yield from _matching(entry.path, depth - 1)


def _last_modified(path) -> float:
    """The newest modification time in ``path`` (a file, or a folder and what it holds)."""
    try:
        newest = os.lstat(path).st_mtime
        if os.path.isdir(path) and not os.path.islink(path):
            for dirpath, dirnames, filenames in os.walk(path):
                for name in dirnames + filenames:
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
        return newest
    except OSError:
        return float("inf")  # vanished or unreadable: someone is at work there, leave it


def _paths_held_open():
    """Real paths of the files open in any process we may inspect (empty without /proc)."""
    held = set()
    try:
        pids = [p for p in os.listdir(_PROC) if p.isdigit()]
    except OSError:
        return held
    for pid in pids:
        fd_dir = os.path.join(_PROC, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or another user's process
        for fd in fds:
            try:
                held.add(os.readlink(os.path.join(fd_dir, fd)))
            except OSError:
                continue
    return held


def _is_held(path, held) -> bool:
    real = os.path.realpath(path)
    return real in held or any(h.startswith(real + os.sep) for h in held)


_IMPORTED_AT = time.time()
