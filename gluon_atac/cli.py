"""Shared command-line plumbing: one-line errors instead of tracebacks."""
import functools
import sys

import mxnet as mx

__all__ = ['UsageError', 'cli_main', 'str2bool']


class UsageError(Exception):
    """A problem with the user's input that should end the program with one line."""


# Errors that describe bad input; anything else is a bug and keeps its traceback.
_USER_ERRORS = (UsageError, ValueError, FileNotFoundError, NotADirectoryError,
                PermissionError, mx.base.MXNetError)


def cli_main(func):
    """Wrap a ``main(argv)`` so bad input exits 2 with ``error: <one line>``."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except _USER_ERRORS as err:
            message = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            print('error: %s' % message, file=sys.stderr)
            sys.exit(2)
    return wrapper


def str2bool(text):
    """Parse yes/no spellings for argparse."""
    value = str(text).lower()
    if value in ('1', 'true', 'yes', 'y', 'on'):
        return True
    if value in ('0', 'false', 'no', 'n', 'off'):
        return False
    raise UsageError('expected a boolean, got %r' % (text,))
