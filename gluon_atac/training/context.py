"""Turn a ``--gpus`` string into MXNet contexts."""
import warnings

import mxnet as mx

from ..cli import UsageError

__all__ = ['parse_devices']


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
