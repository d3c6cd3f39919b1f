"""Tee ``sys.stdout`` into ``log.txt`` (what CoOp's parse_test_res.py reads).

Only stdout is captured; stderr (tqdm bars, warnings) stays on the console.
"""
import contextlib
import os
import os.path as osp
import sys
import time

from engine.user_errors import NO_SPACE_ERRNOS, disk_full

from .tools import mkdir_if_missing


class Logger:
    """A stdout replacement that writes to the console and to a log file."""

    def __init__(self, fpath, console=None):
        self.console = console if console is not None else sys.stdout
        self.fpath = fpath
        self.file = None
        if fpath is not None:
            mkdir_if_missing(osp.dirname(fpath) or ".")
            self.file = open(fpath, "x")  # "x": never overwrite an existing log

    def write(self, msg):
        self.console.write(msg)
        if self.file is not None:
            with self._stop_logging_if_disk_full():
                self.file.write(msg)

    def flush(self):
        self.console.flush()
        if self.file is not None:
            with self._stop_logging_if_disk_full():
                self.file.flush()
                os.fsync(self.file.fileno())  # the log survives a crash or a kill

    @contextlib.contextmanager
    def _stop_logging_if_disk_full(self):
        """A full disk ends the run in one line naming the log (DiskFull); the console
        goes on alone, so the lines printed while the run stops do not fail again."""
        try:
            yield
        except OSError as error:
            if error.errno not in NO_SPACE_ERRNOS:
                raise
            broken, self.file = self.file, None
            try:
                broken.close()
            except OSError:
                pass
            raise disk_full(self.fpath, error) from error

    def close(self):
        """Stop teeing: restore the console as ``sys.stdout`` and close the file."""
        if sys.stdout is self:
            sys.stdout = self.console
        if self.file is not None:
            self.file.close()
            self.file = None

    def __getattr__(self, name):
        # isatty(), encoding, fileno(), ... come from the real console stream.
        if name == "console":  # not set yet: avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.console, name)


def setup_logger(output=None):
    """Tee stdout to ``output`` (a .txt/.log file) or ``output/log.txt``; return the Logger.

    An existing log is never overwritten: the new one gets a
    ``-%Y-%m-%d-%H-%M-%S`` suffix (plus ``-1``, ``-2``, ... within the same second).
    With ``output=None`` nothing happens and None is returned.
    """
    if output is None:
        return None
    output = str(output)
    if output.endswith(".txt") or output.endswith(".log"):
        fpath = output
    else:
        fpath = osp.join(output, "log.txt")
    if osp.exists(fpath):
        fpath = _unused_name(fpath + time.strftime("-%Y-%m-%d-%H-%M-%S"))
    logger = Logger(fpath)
    sys.stdout = logger
    return logger


def _unused_name(fpath):
    candidate, n = fpath, 0
    while osp.exists(candidate):
        n += 1
        candidate = f"{fpath}-{n}"
    return candidate
