"""``python -m gluon_atac.summary MODEL``: params and GMACs against the ReLU twin.

Classes, input size and act_layers are the model's registered defaults unless given (the
paper's CIFAR columns count 100 classes: ``--classes 100``); with ``--params`` of a trained
run its model card describes the network.
"""

from ..errors import UsageError, cli_main
from ..utils.argv import command_parser
from ..model_zoo import get_model
from ..trained import add_model_flags, resolve
from ..utils.counting import count_params, count_flops


def summarize(model, side, **kwargs):
    """Counts of ``model`` built with ``kwargs`` and of its ReLU twin.

    Parameters
    ----------
    model : str
        Registered model name.
    side : int
        Side of the square input the counts are for.
    **kwargs
        Model options for :func:`gluon_atac.get_model`.

    Returns
    -------
    list of dict
        One row per network (the ReLU twin first): ``act_type, total, trainable, macs,
        gate_ops``.
    """
    shape = (1, 3, side, side)
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
    parser = command_parser('summary', __doc__.split('\n')[0])
    add_model_flags(parser, params_required=False)
    args = parser.parse_args(argv)
    if args.model is None and args.params is None:
        raise UsageError('MODEL is required, e.g. cifar_resnet20_v2 (or --params of a run '
                         'with a model card)')
    model = resolve(args)
    rows = summarize(model.name, model.input_size, **model.model_kwargs())
    print(format_table(model.name, rows))
    return rows


if __name__ == '__main__':
    main()
