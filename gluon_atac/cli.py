"""Shared command-line plumbing: one-line errors instead of tracebacks."""
import functools
import sys

import mxnet as mx

__all__ = ['UsageError', 'cli_main', 'one_line', 'str2bool', 'without_options',
           'add_architecture_flags', 'architecture_options']


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


def add_architecture_flags(parser):
    """Flags every command shares for the ``get_model`` options of a trained network.

    ``--act-type --r --act-layers --use-global/--useGlobal --no-relu --attention``; read
    them back with :func:`architecture_options`.
    """
    parser.add_argument('--act-type', default='ChaATAC')
    parser.add_argument('--r', type=int, default=2)
    parser.add_argument('--act-layers', type=int, default=None,
                        help="default: the model's (4 for CIFAR, 2 for ResNets)")
    parser.add_argument('--use-global', '--useGlobal', dest='use_global',
                        action='store_true')
    parser.add_argument('--no-relu', action='store_true', help='ATAC without inner ReLU')
    parser.add_argument('--attention', default=None,
                        help='attention module on the residual branch (se, ge)')


def architecture_options(args):
    """``get_model`` keyword arguments from :func:`add_architecture_flags`' flags."""
    options = dict(act_type=args.act_type, r=args.r, use_global=args.use_global,
                   use_relu=not args.no_relu)
    if args.act_layers is not None:
        options['act_layers'] = args.act_layers
    if args.attention:
        options['attention'] = args.attention
    return options
