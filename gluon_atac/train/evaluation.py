"""Test accuracy of a classifier over a DataLoader, on one or more devices; model costs."""
import mxnet as mx
from mxnet import gluon

from ..model_zoo import get_model
from ..utils.counting import count_flops, count_params

__all__ = ['evaluate_cifar', 'split_batch', 'model_costs']


def split_batch(data, label, ctx):
    """Spread a batch over ``ctx`` (uneven slices allowed, no empty slice).

    Parameters
    ----------
    data, label : NDArray
    ctx : list of Context

    Returns
    -------
    (list of NDArray, list of NDArray)
    """
    # split_and_load refuses more slices than samples: a small last batch uses fewer devices.
    ctx = ctx[:max(1, min(len(ctx), data.shape[0]))]
    return (gluon.utils.split_and_load(data, ctx, even_split=False),
            gluon.utils.split_and_load(label, ctx, even_split=False))


def evaluate_cifar(net, loader, ctx):
    """Top-1 accuracy of ``net`` over every batch of ``loader``.

    Parameters
    ----------
    net : mxnet.gluon.Block
        Initialized on ``ctx``; run in inference mode (BN uses running statistics).
    loader : iterable of (NDArray, NDArray)
        Image batches and integer labels, e.g. :func:`gluon_atac.data.eval_loader`.
    ctx : Context or list of Context

    Returns
    -------
    float
        Fraction of correctly classified samples.
    """
    ctx = ctx if isinstance(ctx, (list, tuple)) else [ctx]
    metric = mx.metric.Accuracy()
    for data, label in loader:
        xs, ys = split_batch(data, label, ctx)
        metric.update(ys, [net(x) for x in xs])
    return metric.get()[1]


def model_costs(name, input_shape=(1, 3, 32, 32), **kwargs):
    """Parameters and multiply-adds of ``get_model(name, **kwargs)`` for one image.

    Counted on a fresh, uninitialized copy, so a network being trained is not traced.

    Returns
    -------
    (int, int)
        Total parameters as saved, and conv + dense multiply-adds.
    """
    net = get_model(name, **kwargs)
    return count_params(net, input_shape)['total'], count_flops(net, input_shape)['macs']
