"""Errors caused by the user's input (config, paths, weights), shown as one line.

``train.py`` prints such an error as ``error: <message>`` and exits with status 2;
any other exception is a bug and keeps its traceback. Modules mark their error
classes with ``@user_error`` (or subclass ``UserError``).
"""
import contextlib
import errno

_USER_ERROR_TYPES = []


class UserError(Exception):
    """Base class for input errors whose message alone tells the user what to fix."""


def user_error(cls):
    """Class decorator: instances of ``cls`` are user errors."""
    _USER_ERROR_TYPES.append(cls)
    return cls


def is_user_error(error):
    return isinstance(error, (UserError, *_USER_ERROR_TYPES))


class DiskFull(UserError):
    """A write failed because the disk (or the user's quota) is full."""


NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def disk_full(path, error):
    """The one-line DiskFull for ``error`` (an ENOSPC/EDQUOT OSError) writing ``path``."""
    return DiskFull(f"No space left on device while writing {path} ({error.strerror or error}); "
                    "free some space (what was written before is intact) and run again")


@contextlib.contextmanager
def reporting_disk_full(path):
    """Turn a full disk while writing ``path`` into one DiskFull line; other errors pass."""
    try:
        yield
    except OSError as error:
        if error.errno in NO_SPACE_ERRNOS:
            raise disk_full(path, error) from error
        raise
