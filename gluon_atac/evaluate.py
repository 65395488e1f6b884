"""``python -m gluon_atac.evaluate MODEL --params FILE --data PATH``: top-1/top-5 error.

The architecture comes from the flags (``--act-type --r --act-layers ...``), never from the
file name, so the original's ``0.2141-imagenet-ResNet50_v1b_ChaATAC-155-best.params``
loads as ``resnet50_v1b --act-type ChaATAC --r 2 --act-layers 2``; a file of another
architecture stops with the checked-loading error. ImageNet data is a ``.rec`` file or a
``<class>/*.jpg`` folder, preprocessed as in validation (resize ``ceil(size/crop_ratio)``,
centre crop); CIFAR data are the official files (``--dataset cifar10|cifar100``).
"""
import argparse
import json
import os
import warnings

import mxnet as mx

from .cli import add_architecture_flags, architecture_options
from .errors import UsageError, cli_main
from .model_zoo import get_model, load_parameters
from .training.engine.checkpoint import atomic_write
from .training.engine.devices import parse_devices
from .training.engine.evaluation import evaluate as score

__all__ = ['evaluate', 'format_table', 'main']

_CIFAR = ('cifar10', 'cifar100')


def _batches(args):
    if args.dataset in _CIFAR:
        from .data import get_dataset, eval_loader
        data = get_dataset(args.dataset, args.data, coarse_labels=args.coarse_labels)
        return eval_loader(data, args.batch_size, args.num_workers), data.classes
    from .data.imagenet import val_batches
    if not args.data:
        raise UsageError('--data is required: a .rec file or a <class>/*.jpg folder')
    batches = val_batches(args.data, args.batch_size, args.input_size, args.crop_ratio,
                          args.num_workers, args.data_idx)
    return batches, None


def model_options(args, classes=None):
    """``get_model`` options from the shared architecture flags."""
    options = architecture_options(args)
    if args.classes or classes:
        options['classes'] = args.classes or classes
    if args.model.lower().startswith('resnet'):
        # ResNets size Gather-Excite's pooling by it; CIFAR hosts have a fixed input.
        options['input_size'] = args.input_size
    return options


def add_model_flags(parser):
    """Architecture flags shared by ``evaluate`` and ``export``."""
    parser.add_argument('model', help='registered model name, e.g. resnet50_v1b')
    parser.add_argument('--params', required=True, help='.params file (save_parameters)')
    add_architecture_flags(parser)
    parser.add_argument('--classes', type=int, default=None,
                        help='default: 1000 (ImageNet), the data set\'s for CIFAR')
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--crop-ratio', type=float, default=0.875)


def load_model(args, ctx, classes=None):
    """Build ``args.model`` from the flags and load ``args.params`` into it (checked)."""
    net = get_model(args.model, **model_options(args, classes))
    load_parameters(net, args.params, ctx=ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def evaluate(args):
    """Errors of ``args.params`` on ``args.data``; see :func:`main` for the flags.

    Returns
    -------
    dict
        ``model``, ``params``, ``data``, ``images``, ``top1_err``, ``top5_err``.
    """
    with warnings.catch_warnings():
        # CPU stand-ins for absent GPUs are expected here; the warning adds nothing.
        warnings.simplefilter('ignore', RuntimeWarning)
        ctx = parse_devices(args.gpus)
    batches, classes = _batches(args)
    net = load_model(args, ctx, classes)
    result = {'model': args.model, 'params': args.params, 'data': args.data or args.dataset,
              'act_type': args.act_type, 'r': args.r, 'act_layers': args.act_layers}
    result.update(score(net, batches, ctx))
    return result


def format_table(rows):
    """Fixed-width table of :func:`evaluate` results."""
    names = [os.path.basename(row['params']) for row in rows]
    width = max([len('params')] + [len(n) for n in names])
    lines = ['%-16s %-*s %8s %10s %10s' % ('model', width, 'params', 'images', 'top-1 err',
                                         'top-5 err')]
    for row, name in zip(rows, names):
        lines.append('%-16s %-*s %8d %10.4f %10.4f' % (
            row['model'], width, name, row['images'], row['top1_err'], row['top5_err']))
    return '\n'.join(lines)


@cli_main
def main(argv=None):
    """Print the error table of a parameter file and write it as JSON."""
    parser = argparse.ArgumentParser(prog='python -m gluon_atac.evaluate',
                                     description=__doc__.split('\n')[0])
    add_model_flags(parser)
    parser.add_argument('--data', default=None,
                        help='ImageNet: .rec file or <class>/*.jpg folder; CIFAR: folder '
                             'of the official files (default: where Gluon keeps them)')
    parser.add_argument('--data-idx', default=None, help='.idx of --data (default: beside)')
    parser.add_argument('--dataset', default='imagenet', choices=('imagenet',) + _CIFAR)
    parser.add_argument('--coarse-labels', action='store_true',
                        help='cifar100: the 20 coarse labels (the paper\'s published figure)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('-j', '--num-data-workers', dest='num_workers', type=int, default=4)
    parser.add_argument('--gpus', default='', help="GPU ids like '0,1'; empty: the CPU")
    parser.add_argument('--json', default=None,
                        help='output file (default: the params path with .eval.json)')
    args = parser.parse_args(argv)
    result = evaluate(args)
    print(format_table([result]))
    out = args.json or os.path.splitext(args.params)[0] + '.eval.json'
    atomic_write(out, lambda p: open(p, 'w').write(json.dumps(result, indent=2) + '\n'))
    print('wrote %s' % out)
    return result


if __name__ == '__main__':
    main()
