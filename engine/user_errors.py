"""Errors caused by the user's input (config, paths, weights), shown as one line.

``train.py`` prints such an error as ``error: <message>`` and exits with status 2;
any other exception is a bug and keeps its traceback. Modules mark their error
classes with ``@user_error`` (or subclass ``UserError``).
"""

_USER_ERROR_TYPES = []


class UserError(Exception):
    """Base class for input errors whose message alone tells the user what to fix."""


def user_error(cls):
    """Class decorator: instances of ``cls`` are user errors."""
    _USER_ERROR_TYPES.append(cls)
    return cls


def is_user_error(error):
    return isinstance(error, (UserError, *_USER_ERROR_TYPES))
