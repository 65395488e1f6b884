"""Errors every layer may raise, and the one-line exit of the commands that report them.

Bad input (a wrong flag, a missing or damaged file, a parameter file of another
architecture) ends a command with ``error: <one line>`` and exit status 2; anything else
is a bug and keeps its traceback.
"""
import functools
import sys

import mxnet as mx

__all__ = ['UsageError', 'DataError', 'ParamsMismatchError', 'CheckpointError', 'WriteError',
           'DivergenceError', 'DIVERGENCE_EXIT', 'one_line', 'cli_main']

# Exit status of a run stopped by a non-finite loss; 2 stays bad input.
DIVERGENCE_EXIT = 3


class UsageError(Exception):
    """A problem with the user's input that should end the program with one line."""


class DataError(ValueError):
    """Data files are missing, truncated or malformed; the message names the files."""


class ParamsMismatchError(ValueError):
    """A parameter file does not fit the network it is loaded into."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated or not a gluon_atac checkpoint."""


class WriteError(ValueError):
    """A file could not be written (disk full, I/O error); the previous one is kept."""


class DivergenceError(ArithmeticError):
    """Training produced a non-finite loss; the message says where and what is kept."""


# Errors that describe bad input; anything else is a bug and keeps its traceback.
_USER_ERRORS = (UsageError, ValueError, FileNotFoundError, NotADirectoryError,
                PermissionError, mx.base.MXNetError)


def one_line(err):
    """The line of ``err``'s message that says what went wrong.

    MXNet's errors carry a native backtrace first and the reason last, e.g.
    ``Traceback ...\\n  File "ndarray.cc", line 250\\nNDArray.Reshape: Check failed: ...``.
    """
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return repr(err)
    if isinstance(err, mx.base.MXNetError):
        return lines[-1]
    return lines[0]


def cli_main(func):
    """Wrap a ``main(argv)`` so bad input exits 2 with ``error: <one line>``, and a
    diverged run exits :data:`DIVERGENCE_EXIT` with one line."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except DivergenceError as err:
            print('error: %s' % one_line(err), file=sys.stderr)
            sys.exit(DIVERGENCE_EXIT)
        except _USER_ERRORS as err:
            print('error: %s' % one_line(err), file=sys.stderr)
            sys.exit(2)
    return wrapper
