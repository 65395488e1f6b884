"""Devices of a run: contexts from ``--gpus``/``--num-gpus``, batches spread over them, and
the batch size a small data set can fill."""
import warnings

import mxnet as mx
from mxnet import gluon

from ...errors import UsageError

__all__ = ['parse_devices', 'devices_with_notes', 'device_of_process', 'split_batch',
           'average_running_stats', 'fitting_batch_size']


def parse_devices(spec, num_gpus=None):
    """Contexts for ``--gpus 0,1`` (or ``--num-gpus N``).

    Parameters
    ----------
    spec : str or None
        Comma-separated GPU ids, e.g. ``'0,1'``; empty or ``None`` means the CPU.
    num_gpus : int, optional
        Alternative to ``spec``: use GPUs ``0..num_gpus-1``.

    Returns
    -------
    list of Context
        The GPUs; when MXNet sees none, one CPU context per requested device (with a
        single warning), so the batch per device and the multi-device code path stay the
        same as on the GPU machine.

    Raises
    ------
    UsageError
        If ``spec`` is not a list of non-negative integers, or names a GPU that is absent.
    """
    if num_gpus is not None and not spec:
        if num_gpus < 0:
            raise UsageError('--num-gpus must be >= 0, got %d' % num_gpus)
        ids = list(range(num_gpus))
    else:
        parts = [p.strip() for p in str(spec or '').split(',') if p.strip()]
        if not all(p.isdigit() for p in parts):
            raise UsageError('--gpus must be comma-separated GPU ids like 0,1; got %r' % spec)
        ids = [int(p) for p in parts]
        if len(set(ids)) != len(ids):
            raise UsageError('--gpus lists a GPU twice: %r' % spec)
    if not ids:
        return [mx.cpu()]
    available = mx.context.num_gpus()
    if available == 0:
        warnings.warn('MXNet sees no GPU: running the %d requested device(s) as CPU '
                      'contexts' % len(ids), RuntimeWarning, stacklevel=2)
        return [mx.cpu(i) for i in range(len(ids))]
    absent = [i for i in ids if i >= available]
    if absent:
        raise UsageError('GPU %s not present: MXNet sees %d GPU(s)'
                         % (','.join(map(str, absent)), available))
    return [mx.gpu(i) for i in ids]


def devices_with_notes(spec, num_gpus=None):
    """:func:`parse_devices`, with its warnings returned for a logger instead of printed.

    Returns
    -------
    (list of Context, list of str)
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ctx = parse_devices(spec, num_gpus)
    return ctx, [str(w.message) for w in caught]


def device_of_process(ctx, local_rank):
    """The one device of a process that has one device (a Horovod rank).

    Parameters
    ----------
    ctx : list of Context
        From :func:`parse_devices`: the machine's GPUs the run may use, or CPU contexts.
    local_rank : int
        The process's rank on its machine.

    Returns
    -------
    list of Context
        ``[ctx[local_rank]]`` on GPUs; ``[mx.cpu(0)]`` on the CPU, which the processes
        of a machine share.

    Raises
    ------
    UsageError
        If there are fewer GPUs than processes on the machine.
    """
    if ctx[0].device_type == 'cpu':
        return [mx.cpu(0)]
    if local_rank >= len(ctx):
        raise UsageError('process %d of this machine has no GPU: --gpus/--num-gpus name %d; '
                         'start at most that many processes per host' % (local_rank, len(ctx)))
    return [ctx[local_rank]]


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


def average_running_stats(net):
    """Give every device the mean of the devices' BatchNorm running statistics.

    Each device updates its running mean and variance from its own slices, so the copies
    drift apart; evaluation splits batches over the devices while ``save_parameters``
    writes the first device's copy. Averaging before each evaluation and save makes the
    logged score the score of the saved file, on any number of devices.

    Parameters
    ----------
    net : mxnet.gluon.Block

    Returns
    -------
    int
        Statistics averaged (0 on one device).
    """
    averaged = 0
    for param in net.collect_params('.*running_mean|.*running_var').values():
        copies = param.list_data()
        if len(copies) < 2:
            continue
        first = copies[0].context
        mean = mx.nd.add_n(*[c.as_in_context(first) for c in copies]) / len(copies)
        # In place: Parameter.set_data would make a Trainer that updates on the kvstore
        # re-create it, dropping the optimizer's momentum.
        for copy in copies:
            copy[:] = mean
        averaged += 1
    return averaged


def fitting_batch_size(per_device, images, devices, logger, workers=1):
    """``per_device``, lowered (with a warning) when the data cannot fill one batch.

    A recipe then runs unchanged as a smoke test on a small set; record iterators refuse
    batches larger than their data.

    Parameters
    ----------
    per_device : int
        ``--batch-size``.
    images : int
        Training images of the whole run.
    devices : int
        Devices per worker.
    logger : logging.Logger
    workers : int, default 1
        Distributed workers sharing the images.

    Returns
    -------
    int
        Batch size per device.

    Raises
    ------
    UsageError
        If not even one image per device is left.
    """
    shard = images // workers
    if per_device * devices <= shard:
        return per_device
    lowered = shard // devices
    if lowered < 1:
        raise UsageError('%d training images cannot give each of %d workers x %d devices '
                         'an image' % (images, workers, devices))
    logger.warning('only %d training images per worker: batch size per device lowered from '
                   '%d to %d so an epoch has one full batch', shard, per_device, lowered)
    return lowered
