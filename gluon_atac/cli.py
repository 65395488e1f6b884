"""Shared command-line plumbing: one-line errors instead of tracebacks."""
import functools
import sys

import mxnet as mx

__all__ = ['UsageError', 'cli_main', 'one_line', 'str2bool', 'without_options']


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
            print('error: %s' % one_line(err), file=sys.stderr)
            sys.exit(2)
    return wrapper


def one_line(err):
    """The line of ``err``'s message that says what went wrong.

    MXNet's errors carry a native backtrace first and the reason last, e.g.
    ``Traceback ...\n  File "ndarray.cc", line 250\nNDArray.Reshape: Check failed: ...``.
    """
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return repr(err)
    if isinstance(err, mx.base.MXNetError):
        return lines[-1]
    return lines[0]


def str2bool(text):
    """Parse yes/no spellings for argparse."""
    value = str(text).lower()
    if value in ('1', 'true', 'yes', 'y', 'on'):
        return True
    if value in ('0', 'false', 'no', 'n', 'off'):
        return False
    raise UsageError('expected a boolean, got %r' % (text,))


def without_options(argv, names):
    """``argv`` less the options ``names`` and their values (``--x v`` and ``--x=v``).

    Parameters
    ----------
    argv : list of str
    names : iterable of str
        Option spellings such as ``'--json'``; each is taken to have one value.
    """
    names = tuple(names)
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not arg.startswith(tuple(name + '=' for name in names)):
            out.append(arg)
    return out
