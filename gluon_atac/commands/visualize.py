"""``python -m gluon_atac.visualize MODEL --params FILE --image IMG --out DIR``.

Pictures of what the ATAC gates do to one image: the input, for every ATAC unit the
gate ``sigmoid(L(x))`` averaged over channels as a heat map at the unit's resolution,
and a histogram of all gate values per stage, in one PNG.

Gates are captured with forward hooks on each unit's ``module`` child (whose output is
the gate), so the network runs unchanged and imperatively.
"""
import math
import os
import re

import mxnet as mx
import numpy as np

from ..data.preprocessing import prepare_image
from ..errors import UsageError, cli_main
from ..data.integrity import add_pixel_limit_flag, set_max_pixels
from ..utils.argv import command_parser
from ..nn import ChaATAC, gluon_graph
from ..trained import add_model_flags, resolve

__all__ = ['find_units', 'capture_gates', 'stage_of', 'plot_gates', 'main']


def find_units(net, cls=ChaATAC):
    """``(structural name, block)`` of every ``cls`` block, in forward order.

    Parameters
    ----------
    net : mxnet.gluon.Block
    cls : type, default :class:`gluon_atac.ChaATAC`
    """
    found = []

    def walk(block, prefix):
        for name, child in block._children.items():
            path = prefix + name
            if isinstance(child, cls):
                found.append((path, child))
            else:
                walk(child, path + '.')
    walk(net, '')
    return found


def capture_gates(net, x):
    """Run ``net`` on ``x`` and return each ATAC unit's gate.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        Not hybridized (hooks do not fire inside a cached graph). Its units run the
        Gluon graph for this call, then get their ``fused`` setting back.
    x : mxnet.nd.NDArray
        One batch, ``N x 3 x H x W``.

    Returns
    -------
    (NDArray, list of (str, ndarray))
        The network output and ``(unit name, gate)`` pairs, gates ``N x C x h x w``
        (``h = w = 1`` for a global-context unit).
    """
    units = find_units(net)
    if not units:
        raise UsageError('the model has no ATAC unit to show (act type relu everywhere?)')
    gates = {}
    handles = []
    for name, unit in units:
        def hook(block, inputs, output, name=name):
            gates[name] = output.asnumpy()
        handles.append(unit.module.register_forward_hook(hook))
    try:
        # The fused operator never calls `module`; the Gluon graph computes the same gate.
        with gluon_graph(net):
            out = net(x)
    finally:
        for handle in handles:
            handle.detach()
    return out, [(name, gates[name]) for name, _ in units]


def stage_of(name):
    """Stage label of a unit from its structural name (CIFAR or v1b host)."""
    match = re.match(r'layer(\d+)\.', name)
    if match:
        return 'stage %s' % match.group(1)
    match = re.match(r'features\.(\d+)\.', name)
    if match:
        return 'stage %d' % (int(match.group(1)) - 1)
    return 'head'


def plot_gates(image, gates, path, title=''):
    """Draw the input, one heat map per unit and one gate histogram per stage.

    Parameters
    ----------
    image : ndarray
        uint8 ``H x W x 3``.
    gates : list of (str, ndarray)
        From :func:`capture_gates`; the first image of the batch is shown.
    path : str
        PNG to write.
    title : str
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    stages = {}
    for name, gate in gates:
        stages.setdefault(stage_of(name), []).append(gate[0].ravel())
    cols = 8
    map_rows = int(math.ceil((len(gates) + 1) / cols))
    fig = plt.figure(figsize=(2.1 * cols, 2.3 * map_rows + 2.6), dpi=90)
    grid = fig.add_gridspec(map_rows + 1, cols, height_ratios=[1] * map_rows + [1.2])
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(image)
    ax.set_title('input %dx%d' % image.shape[:2], fontsize=8)
    ax.axis('off')
    for i, (name, gate) in enumerate(gates, 1):
        heat = gate[0].mean(axis=0)
        ax = fig.add_subplot(grid[i // cols, i % cols])
        shown = ax.imshow(heat, cmap='magma', interpolation='nearest')
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
        ax.set_title('%s\n%dx%d, %d ch' % (name, heat.shape[0], heat.shape[1],
                                           gate.shape[1]), fontsize=7)
        ax.axis('off')
    span = max(1, cols // len(stages))
    ordered = sorted(stages.items(), key=lambda item: (item[0] == 'head', item[0]))
    for j, (stage, values) in enumerate(ordered):
        values = np.concatenate(values)
        ax = fig.add_subplot(grid[map_rows, j * span:(j + 1) * span])
        ax.hist(values, bins=50, range=(0, 1), color='C%d' % j)
        ax.set_title('%s: gate values (mean %.2f)' % (stage, values.mean()), fontsize=8)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
    fig.suptitle(title + '  (heat maps: gate mean over channels, own colour scale each)',
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


@cli_main
def main(argv=None):
    """Write ``<out>/<image name>_gates.png`` for a trained model."""
    parser = command_parser('visualize', __doc__.split('\n')[0])
    add_model_flags(parser)
    parser.add_argument('--image', required=True, help='image file (jpg, png)')
    parser.add_argument('--out', required=True, help='folder for the PNG')
    add_pixel_limit_flag(parser)
    args = parser.parse_args(argv)
    set_max_pixels(args.max_pixels)
    model = resolve(args)
    image, x = prepare_image(args.image, model.preprocessing)
    net = model.load(mx.cpu(), hybridize=False)
    out, gates = capture_gates(net, mx.nd.array(x))
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.splitext(os.path.basename(args.image))[0]
    path = os.path.join(args.out, '%s_gates.png' % stem)
    top = int(out[0].argmax(axis=0).asscalar())
    plot_gates(image, gates, path, title='%s on %s: %d ATAC units, predicted class %d'
               % (model.name, os.path.basename(args.image), len(gates), top))
    print(path)
    return path


if __name__ == '__main__':
    main()
