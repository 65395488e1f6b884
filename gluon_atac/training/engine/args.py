"""The argument parser both trainers build on, and the original flags they share.

Both recipes take the original open-atac command lines verbatim; the flags below have the
same spelling, meaning and default (GluonCV's ``train_cifar10.py``/``train_imagenet.py``
ones) in both scripts.
"""
import argparse

from ...errors import UsageError

__all__ = ['TrainingParser', 'add_shared_flags', 'decay_epochs', 'require_positive']


class TrainingParser(argparse.ArgumentParser):
    """argparse whose errors become one ``error:`` line (via ``cli_main``), not usage text."""

    def error(self, message):
        raise UsageError(message)


def add_shared_flags(parser, modes=('imperative', 'hybrid')):
    """Add the original flags both trainers take, in groups named for ``--help``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    modes : tuple of str
        Choices of ``--mode``; the ImageNet script also accepts ``symbolic``.

    Returns
    -------
    dict
        The argument groups ``'optimization'`` and ``'outputs'``, for the recipe's own
        flags.
    """
    optim = parser.add_argument_group('optimization (original flags)')
    optim.add_argument('--batch-size', type=int, default=32, help='per device')
    optim.add_argument('--num-epochs', type=int, default=3)
    optim.add_argument('--lr', type=float, default=0.1)
    optim.add_argument('--momentum', type=float, default=0.9)
    optim.add_argument('--wd', type=float, default=0.0001)
    optim.add_argument('--lr-decay', type=float, default=0.1)
    optim.add_argument('--lr-decay-period', type=int, default=0,
                       help='decay every N epochs (overrides --lr-decay-epoch when > 0)')
    optim.add_argument('--lr-decay-epoch', default='40,60',
                       help='comma-separated epochs (0-based) at whose start lr decays')
    optim.add_argument('--mode', default='imperative', choices=modes,
                       help='hybrid compiles the network')
    optim.add_argument('-j', '--num-data-workers', dest='num_workers', type=int, default=4,
                       help='data loading threads or processes')
    optim.add_argument('--seed', type=int, default=0,
                       help='seeds initialization, data order and augmentation')
    optim.add_argument('--deterministic', action='store_true',
                       help='bit-identical runs: MXNet\'s naive engine on one thread (the '
                            'script restarts itself so; several times slower)')
    out = parser.add_argument_group('outputs (original flags)')
    out.add_argument('--save-dir', default='params')
    out.add_argument('--no-progress', action='store_true', help='no progress bars')
    out.add_argument('--overwrite', action='store_true',
                     help='start afresh in a --save-dir that holds another run\'s files '
                          '(metrics.jsonl, checkpoint.ckpt, best.params, model.json), '
                          'replacing them; refused without it')
    return {'optimization': optim, 'outputs': out}


def decay_epochs(args):
    """Sorted 0-based epochs at whose start the step schedule decays the learning rate.

    ``--lr-decay-period N`` (when > 0) decays every N epochs; otherwise the comma-separated
    ``--lr-decay-epoch`` list is used.

    Raises
    ------
    UsageError
        If ``--lr-decay-epoch`` is not a list of integers.
    """
    if args.lr_decay_period > 0:
        return list(range(args.lr_decay_period, args.num_epochs, args.lr_decay_period))
    try:
        return sorted(int(e) for e in args.lr_decay_epoch.split(',') if e.strip())
    except ValueError:
        raise UsageError('--lr-decay-epoch must be comma-separated integers like 40,60; '
                         'got %r' % args.lr_decay_epoch) from None


def require_positive(args, names):
    """Raise ``UsageError`` naming the first of ``names`` whose value is below 1 (``None``,
    a flag left to a model card, is not checked)."""
    for name in names:
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UsageError('--%s must be >= 1, got %s'
                             % (name.replace('_', '-'), getattr(args, name)))
