"""Command line of ``train_cifar.py``: the original script's flags plus ours."""
import argparse

from ..cli import UsageError
from ..data import DATASETS
from ..nn import canonical_name

__all__ = ['build_parser', 'parse_args', 'model_spec']


class _Parser(argparse.ArgumentParser):
    """argparse whose errors become one ``error:`` line (via ``cli_main``), not usage text."""

    def error(self, message):
        raise UsageError(message)


def build_parser():
    """The ``train_cifar.py`` argument parser.

    Defaults of the original's flags are GluonCV's ``train_cifar10.py`` ones, except
    ``--gpus`` (empty: the CPU).
    """
    p = _Parser(description='Train a CIFAR pre-activation ResNet with ATAC or another '
                            'activation (flags of the original open-atac script).')
    model = p.add_argument_group('model (original flags)')
    model.add_argument('--model', default='atac',
                       help="'atac' or 'resnet' (both: cifar_resnet<6*blocks+2>_v2, "
                            "ChaATAC resp. relu by default), or a cifar_resnet*_v2 name")
    model.add_argument('--blocks', type=int, default=3, help='blocks per stage (depth 6b+2)')
    model.add_argument('--act-type', default=None,
                       help='activation: ChaATAC (alias atac), relu, prelu, elu, selu, '
                            'gelu, swish, xunit')
    model.add_argument('--r', type=int, default=2, help='ATAC reduction ratio')
    model.add_argument('--act-layers', type=int, default=4,
                       help='places (3 stages + head, from the head back) using --act-type')
    model.add_argument('--useGlobal', action='store_true',
                       help='ATAC with global (pooled) context')
    model.add_argument('--useReLU', action='store_true',
                       help='ATAC inner ReLU (off unless given, as in the original)')
    model.add_argument('--summary', action='store_true', help='print the model summary')
    model.add_argument('--drop-rate', type=float, default=0.0,
                       help='dropout of wide ResNets in the original; unused by these hosts')
    model.add_argument('--attention', default=None,
                       help='attention module passed to get_model(attention=...)')

    data = p.add_argument_group('data')
    data.add_argument('--dataset', default='cifar10', choices=DATASETS)
    data.add_argument('--data-dir', default=None,
                      help='folder with the official CIFAR files (either layout); default '
                           '$MXNET_HOME/datasets/<dataset>, where Gluon downloads')
    data.add_argument('--coarse-labels', action='store_true',
                      help="cifar100: the 20 coarse labels (reproduces the paper's figure)")
    data.add_argument('-j', '--num-data-workers', dest='num_workers', type=int, default=4,
                      help='DataLoader threads (capped at the core count); results do not '
                           'depend on it')

    train = p.add_argument_group('training (original flags)')
    train.add_argument('--batch-size', type=int, default=32, help='per device')
    train.add_argument('--gpus', default='', help="GPU ids like '0,1'; empty: the CPU")
    train.add_argument('--num-epochs', type=int, default=3)
    train.add_argument('--lr', type=float, default=0.1)
    train.add_argument('--momentum', type=float, default=0.9)
    train.add_argument('--wd', type=float, default=0.0001)
    train.add_argument('--lr-decay', type=float, default=0.1)
    train.add_argument('--lr-decay-period', type=int, default=0,
                       help='decay every N epochs (overrides --lr-decay-epoch when > 0)')
    train.add_argument('--lr-decay-epoch', default='40,60',
                       help='comma-separated epochs (0-based) at whose start lr decays')
    train.add_argument('--mode', default='imperative', choices=('imperative', 'hybrid'))
    train.add_argument('--seed', type=int, default=0)

    out = p.add_argument_group('outputs')
    out.add_argument('--save-period', type=int, default=10,
                     help='write checkpoint.ckpt every N epochs (and at the end)')
    out.add_argument('--save-dir', default='params')
    out.add_argument('--resume-from', default=None,
                     help='checkpoint.ckpt to continue, or a .params file (weights only)')
    out.add_argument('--save-plot-dir', default=None,
                     help='also write the history plot here')
    out.add_argument('--log-file', default=None, help='default <save-dir>/train.log')
    out.add_argument('--no-progress', action='store_true', help='no progress bars')
    out.add_argument('--eval-only', action='store_true',
                     help='report the test accuracy of --resume-from and stop')
    return p


def _decay_epochs(args):
    if args.lr_decay_period > 0:
        return list(range(args.lr_decay_period, args.num_epochs, args.lr_decay_period))
    try:
        return sorted(int(e) for e in args.lr_decay_epoch.split(',') if e.strip())
    except ValueError:
        raise UsageError('--lr-decay-epoch must be comma-separated integers, got %r'
                         % args.lr_decay_epoch) from None


def parse_args(argv=None):
    """Parse and check ``train_cifar.py`` arguments.

    Adds ``decay_epochs`` (list of int) and ``act_type`` resolved from ``--model``.

    Raises
    ------
    UsageError
        Any invalid value, with one line saying which.
    """
    args = build_parser().parse_args(argv)
    positive = ('blocks', 'r', 'batch_size', 'num_epochs', 'save_period')
    for name in positive:
        if getattr(args, name) < 1:
            raise UsageError('--%s must be >= 1, got %s'
                             % (name.replace('_', '-'), getattr(args, name)))
    if not 0 <= args.act_layers <= 4:
        raise UsageError('--act-layers must be 0..4, got %d' % args.act_layers)
    if args.lr <= 0:
        raise UsageError('--lr must be > 0, got %s' % args.lr)
    if args.coarse_labels and args.dataset != 'cifar100':
        raise UsageError('--coarse-labels applies to --dataset cifar100 only')
    if args.eval_only and not args.resume_from:
        raise UsageError('--eval-only needs --resume-from FILE (.params or .ckpt)')
    args.decay_epochs = _decay_epochs(args)
    args.zoo_name, default_act = _model_name(args)
    args.act_type = args.act_type or default_act
    canonical_name(args.act_type)
    return args


def _model_name(args):
    name = args.model.lower()
    if name in ('atac', 'resnet'):
        return 'cifar_resnet%d_v2' % (6 * args.blocks + 2), 'ChaATAC' if name == 'atac' \
            else 'relu'
    if name.startswith('cifar_resnet') and name.endswith('_v2'):
        return name, 'ChaATAC'
    raise UsageError("--model must be 'atac', 'resnet' or a cifar_resnet*_v2 name, got %r"
                     % args.model)


def model_spec(args, classes):
    """Keyword arguments of ``get_model`` for parsed ``args``.

    Parameters
    ----------
    args : argparse.Namespace
        From :func:`parse_args`.
    classes : int

    Returns
    -------
    dict
        ``attention`` is only present when ``--attention`` was given, so builds of
        ``get_model`` without it keep working.
    """
    spec = dict(classes=classes, act_type=args.act_type, r=args.r, use_relu=args.useReLU,
                use_global=args.useGlobal, act_layers=args.act_layers)
    if args.attention:
        spec['attention'] = args.attention
    return spec
