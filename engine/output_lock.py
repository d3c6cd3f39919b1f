"""One run per output folder: an exclusive ``flock`` on ``OUTPUT_DIR/.run.lock``.

``train.py`` takes the lock before it looks at the folder (``check_output_dir``) and
holds it until the run ends, so two runs started on one folder at once cannot both pass
the check and then write over each other's log and checkpoints. The second one stops
with one line naming the holder's pid. Evaluation-only runs take it too: they write a
log (and a run record) into the folder.

The kernel releases a ``flock`` when its holder dies, even by ``kill -9``, so a killed
run never leaves a folder locked; a lock file left behind is harmless (nobody holds it).
Only the standard library is used here: the module is cheap to import.
"""
import contextlib
import errno
import fcntl
import os
import socket
import time

from engine.user_errors import UserError, reporting_disk_full

LOCK_FILE = ".run.lock"


class OutputDirLocked(UserError):
    """Another live run holds the output folder's lock."""


class OutputDirLock:
    """The exclusive lock of one output folder; ``acquire()`` or raise OutputDirLocked."""

    def __init__(self, output_dir):
        self.output_dir = os.path.abspath(os.path.expanduser(output_dir))
        self.path = os.path.join(self.output_dir, LOCK_FILE)
        self._file = None
        self._created_folder = False

    @property
    def held(self):
        return self._file is not None

    def acquire(self):
        if self.held:
            return self
        with reporting_disk_full(self.path), _one_line_if_unusable(self.output_dir):
            if not os.path.isdir(self.output_dir):
                os.makedirs(self.output_dir, exist_ok=True)
                self._created_folder = True
            return self._lock()

    def _lock(self):
        while True:
            lock_file = open(self.path, "a+")  # noqa: SIM115  (held for the whole run)
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                lock_file.close()
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise OutputDirLocked(self._in_use_message()) from None
            # A holder that ended just now unlinks the file it locked; the lock we got may
            # be on that unlinked file, which protects nothing: lock the current file.
            if _same_file(lock_file, self.path):
                break
            lock_file.close()
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                        f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        lock_file.flush()
        self._file = lock_file
        return self

    def release(self):
        """Unlock (and remove the lock file, and the folder if this lock made it and it
        stayed empty). Safe to call twice."""
        if self._file is None:
            return
        try:
            if _same_file(self._file, self.path):
                os.remove(self.path)
        except OSError:
            pass
        self._file.close()  # closing the last descriptor releases the flock
        self._file = None
        if self._created_folder:
            try:
                os.rmdir(self.output_dir)  # only if nothing was written into it
            except OSError:
                pass

    def _in_use_message(self):
        try:
            with open(self.path) as f:
                holder = f.read().strip() or "unknown pid"
        except OSError:
            holder = "unknown pid"
        return (f"Output directory {self.output_dir} is in use by another run ({holder}); "
                "wait for it to end or choose another --output-dir")

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


@contextlib.contextmanager
def _one_line_if_unusable(output_dir):
    """A folder that cannot be created or written (permissions, read-only disk): one line."""
    try:
        yield
    except PermissionError as error:
        raise UserError(f"Cannot use output directory {output_dir}: {error.strerror} "
                        f"({error.filename}); choose another --output-dir") from error
    except OSError as error:
        if error.errno != errno.EROFS:
            raise
        raise UserError(f"Cannot use output directory {output_dir}: it is on a read-only "
                        "file system; choose another --output-dir") from error


def _same_file(open_file, path):
    try:
        on_disk = os.stat(path)
    except OSError:
        return False
    held = os.fstat(open_file.fileno())
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)
