"""How both recipes score a network: top-1/top-k over a data set, on one or more devices;
and the parameter and multiply-add counts a run logs."""
import mxnet as mx

from ...errors import DataError
from ...model_zoo import get_model
from ...utils.counting import count_flops, count_params
from .devices import split_batch
from .progress import progress

__all__ = ['evaluate', 'scores', 'model_costs']


def evaluate(net, batches, ctx, k=5, dtype='float32', progress_label=None):
    """Top-1 and top-``k`` accuracy and error of ``net`` over ``batches``.

    Parameters
    ----------
    net : mxnet.gluon.Block
        Run in inference mode (BN uses its running statistics).
    batches : iterable of (NDArray, NDArray)
        Images and class labels.
    ctx : Context or list of Context
    k : int, default 5
        With fewer than ``k`` classes, top-``k`` means all of them (error 0).
    dtype : str, default 'float32'
        Type the images are cast to (the network's).
    progress_label : str, optional
        Show a progress bar with images/s under this label (only when stderr is a
        terminal).

    Returns
    -------
    dict
        :func:`scores`.

    Raises
    ------
    DataError
        If ``batches`` holds no image.
    """
    ctx = ctx if isinstance(ctx, (list, tuple)) else [ctx]
    top1 = topk = images = 0
    bar = progress(None, progress_label, enabled=progress_label is not None)
    for data, label in batches:
        bar.update(data.shape[0])
        for x, y in zip(*split_batch(data, label, ctx)):
            out = net(x.astype(dtype, copy=False))
            ranked = mx.nd.topk(out.astype('float32'), k=min(k, out.shape[1]), axis=1)
            hits = ranked == y.astype('float32').reshape((-1, 1))
            top1 += int(hits[:, 0].sum().asscalar())
            topk += int(hits.sum().asscalar())
            images += x.shape[0]
    bar.close()
    if not images:
        raise DataError('the evaluation data holds no images')
    return scores(top1, topk, images)


def scores(top1, topk, images):
    """The scores of ``images`` of which ``top1`` (``topk``) had the label first (in
    the first k).

    Returns
    -------
    dict
        ``top1_acc``, ``top1_err``, ``top5_err`` (top-k), ``images``, and the counts
        ``top1_hits`` and ``topk_hits`` (to add up the scores of data split over workers).
    """
    top1, topk, images = int(top1), int(topk), int(images)
    return {'top1_acc': top1 / images, 'top1_err': 1 - top1 / images,
            'top5_err': 1 - topk / images, 'images': images, 'top1_hits': top1,
            'topk_hits': topk}


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
