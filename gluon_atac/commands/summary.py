"""``python -m gluon_atac.summary MODEL``: params and GMACs against the ReLU twin."""
import argparse

from .flags import add_architecture_flags, architecture_options
from ..errors import cli_main
from ..model_zoo import get_model
from ..utils.counting import count_params, count_flops


def summarize(model, input_size, **kwargs):
    """Counts of ``model`` built with ``kwargs`` and of its ReLU twin.

    Parameters
    ----------
    model : str
        Registered model name.
    input_size : int
        Side of the square input.
    **kwargs
        Model options for :func:`gluon_atac.get_model`.

    Returns
    -------
    list of dict
        One row per network (the ReLU twin first): ``act_type, total, trainable, macs,
        gate_ops``.
    """
    shape = (1, 3, input_size, input_size)
    rows = []
    for act in ['relu', kwargs.pop('act_type')]:
        net = get_model(model, act_type=act, **kwargs)
        rows.append(dict(act_type=act, **count_params(net, shape), **count_flops(net, shape)))
    return rows


def format_table(model, rows):
    """Render :func:`summarize` rows as a fixed-width table."""
    base = rows[0]
    lines = ['%s' % model,
             '%-10s %12s %12s %8s %10s %9s %9s' % ('act', 'params', 'trainable', 'GMACs',
                                                  'gate Mops', 'params x', 'MACs x')]
    for row in rows:
        lines.append('%-10s %12s %12s %8.3f %10.2f %9.3f %9.3f' % (
            row['act_type'], '{:,}'.format(row['total']), '{:,}'.format(row['trainable']),
            row['macs'] / 1e9, row['gate_ops'] / 1e6, row['total'] / base['total'],
            row['macs'] / base['macs']))
    return '\n'.join(lines)


@cli_main
def main(argv=None):
    """Print the params/GMACs table of a model and its ReLU twin."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('model', help='registered model name, e.g. cifar_resnet20_v2')
    add_architecture_flags(parser)
    parser.add_argument('--classes', type=int, default=None,
                        help='default: 100 for CIFAR, 1000 for ResNet')
    parser.add_argument('--input-size', type=int, default=None,
                        help='default: 32 for CIFAR, 224 for ResNet')
    args = parser.parse_args(argv)
    cifar = args.model.lower().startswith('cifar')
    kwargs = dict(architecture_options(args), classes=args.classes or (100 if cifar else 1000))
    input_size = args.input_size or (32 if cifar else 224)
    print(format_table(args.model, summarize(args.model, input_size, **kwargs)))


if __name__ == '__main__':
    main()
