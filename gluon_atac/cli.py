"""Argument plumbing the commands share: architecture flags and option filtering."""

__all__ = ['without_options', 'add_architecture_flags', 'architecture_options']


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
