"""Attentional activation units (ATAC): ``y = x * sigmoid(L(x))``."""
import contextlib

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

from .. import ops

__all__ = ['ChaATAC', 'check_reduction', 'set_fused', 'gluon_graph', 'FUSED_MAX_CHANNELS']

# Widest unit the whole-gate kernel takes by default; wider units run the Gluon graph.
# Measured on 2 CPU threads: the whole gate wins on the CIFAR ResNet's 16-64 channels,
# while on ResNet-50's 256-512 oneDNN's GEMMs beat the kernel's (training 0.83 of ReLU's
# speed whole-gate, 0.88 Gluon; a native BN2-sigmoid-product tail after oneDNN's
# convolutions measured within noise of the Gluon graph and was removed, docs/speed.md).
FUSED_MAX_CHANNELS = 64


def check_reduction(channels, r):
    """Return the inner width ``channels // r`` or raise ``ValueError``.

    Parameters
    ----------
    channels : int
        Number of input (and output) channels of the unit.
    r : int
        Channel reduction ratio of the bottleneck.
    """
    if not isinstance(r, int) or isinstance(r, bool) or r <= 0:
        raise ValueError('ATAC reduction ratio r must be a positive integer, got r=%r '
                         '(channels=%d)' % (r, channels))
    if channels // r == 0:
        raise ValueError('ATAC with channels=%d and r=%d has an inner width of 0: '
                         'r must be at most channels' % (channels, r))
    return channels // r


class ChaATAC(nn.HybridBlock):
    r"""Channel-wise attentional activation (the paper's ATAC unit).

    .. math:: L(x) = BN(W_2\,\delta(BN(W_1 x))),\qquad y = x \otimes \sigma(L(x))

    ``W_1`` (C -> C/r) and ``W_2`` (C/r -> C) are bias-free 1x1 convolutions, so the
    gate has the full C x H x W shape: every element gets its own point-wise channel
    context.

    Parameters
    ----------
    channels : int
        Number of channels of the input.
    r : int, default 2
        Reduction ratio of the bottleneck; the inner width is ``channels // r``.
    use_relu : bool, default True
        Keep the inner ReLU (``False`` gives conv-BN-conv-BN-sigmoid).
    use_global : bool, default False
        Average-pool the input first, making the gate C x 1 x 1 (SE-like global context).
    norm_layer : type, default :class:`mxnet.gluon.nn.BatchNorm`
        Normalization layer, e.g. SyncBatchNorm for multi-device training.
    norm_kwargs : dict, optional
        Extra arguments for ``norm_layer``.

    Attributes
    ----------
    fused : bool or None
        ``None`` (default) runs the whole local gate as one native operator (see
        :mod:`gluon_atac.ops`) when it can, for units of at most ``FUSED_MAX_CHANNELS``
        channels, and wider ones as the Gluon graph. ``True`` runs the native operator at
        any width; ``False`` always runs the Gluon graph. Set it before the first call or
        ``hybridize``: a hybridized graph keeps the path it was traced with.

    Notes
    -----
    Children of ``module`` carry the original code's indices (0 conv, 1 BN, 2 ReLU, 3 conv,
    4 BN, 5 sigmoid; shifted by one with ``use_global``), so its ``.params`` files load.
    Both paths use the same parameters and compute the same function, batch statistics
    and running-statistics updates included (one exception: a backward through
    inference-mode statistics, ``autograd.record(train_mode=False)``, is exact on the
    native operator, while MXNet's BatchNorm backward there does not differentiate what
    its forward computed). The native operator covers the local gate with plain
    :class:`~mxnet.gluon.nn.BatchNorm` (``center`` and ``scale`` on, no global statistics,
    axis 1), float32 on CPU and ``grad_req='write'``; anything else (e.g.
    ``use_global=True`` or SyncBatchNorm) takes the Gluon graph.
    """

    # The registered native operator a unit calls. benchmarks/gate_ab.py loads a variant
    # of the kernel under another name and points units at it, to time both in one process.
    native_op = 'atac_gate'

    def __init__(self, channels, r=2, use_relu=True, use_global=False,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, **kwargs):
        super(ChaATAC, self).__init__(**kwargs)
        inter_channels = check_reduction(channels, r)
        norm_kwargs = norm_kwargs or {}
        self.channels, self.r = channels, r
        self.use_relu, self.use_global = use_relu, use_global
        self.fused = None
        with self.name_scope():
            self.module = nn.HybridSequential(prefix='module_')
            with self.module.name_scope():
                if use_global:
                    self.module.add(nn.GlobalAvgPool2D())
                self.module.add(nn.Conv2D(inter_channels, kernel_size=1, use_bias=False,
                                          in_channels=channels))
                self.module.add(norm_layer(in_channels=inter_channels, **norm_kwargs))
                if use_relu:
                    self.module.add(nn.Activation('relu'))
                self.module.add(nn.Conv2D(channels, kernel_size=1, use_bias=False,
                                          in_channels=inter_channels))
                self.module.add(norm_layer(in_channels=channels, **norm_kwargs))
                self.module.add(nn.Activation('sigmoid'))

    def hybrid_forward(self, F, x):
        if self._native_path() == 'gate':
            return self._fused_forward(F, x)
        # broadcast_mul keeps the op on oneDNN and covers the C x 1 x 1 global gate.
        return F.broadcast_mul(x, self.module(x))

    def _native_path(self):
        """``'gate'`` (the fused operator) or ``None`` (the Gluon graph)."""
        if self.fused is None and self.channels > FUSED_MAX_CHANNELS:
            return None
        return 'gate' if self._fusable() else None

    def _layers(self):
        """(conv1, bn1, conv2, bn2) of the local gate."""
        convs = [b for b in self.module._children.values() if isinstance(b, nn.Conv2D)]
        norms = [b for b in self.module._children.values() if not isinstance(
            b, (nn.Conv2D, nn.Activation, nn.GlobalAvgPool2D))]
        return convs[0], norms[0], convs[1], norms[1]

    def _fusable(self):
        """Whether the native operator computes exactly what the Gluon graph would."""
        if self.fused is False or self.use_global:
            return False
        conv1, bn1, conv2, bn2 = self._layers()
        for bn in (bn1, bn2):
            # Other norm layers (GroupNorm) have no BatchNorm _kwargs: test the type first.
            if type(bn) is not nn.BatchNorm:
                return False
            kw = bn._kwargs
            if (kw.get('axis', 1) != 1 or kw['fix_gamma'] or kw['use_global_stats']
                    or bn.beta.grad_req == 'null'):
                return False
        for param in (conv1.weight, bn1.gamma, bn1.beta, conv2.weight, bn2.gamma, bn2.beta):
            # the native backward writes its gradients: accumulation ('add') needs Gluon
            if param.grad_req != 'write':
                return False
        for param in self.collect_params().values():
            if np.dtype(param.dtype) != np.float32:
                return False
            try:
                contexts = param.list_ctx()
            except RuntimeError:
                # uninitialized: a symbolic trace (counting, summaries) sees the Gluon graph
                return False
            if any(ctx.device_type != 'cpu' for ctx in contexts):
                return False
        return ops.load() is not None

    @staticmethod
    def _native_args(F, x, params):
        """Parameter arrays (imperative) or variables (symbolic), and the context kwargs."""
        if isinstance(x, mx.nd.NDArray):
            return [p.data(x.context) for p in params], {'ctx': x.context}
        return [p.var() for p in params], {}

    @staticmethod
    def _mode_probe(F, ctx, bn, running_mean, running_var):
        """A tiny BatchNorm output that tells the native operator the statistics mode.

        Custom operators are not told whether BatchNorm should use batch or running
        statistics. A BatchNorm on the probe [0, ``ops.MODE_PROBE_SPAN``] answers: with
        batch statistics its outputs differ by 2, with running ones by far more (the
        library compares with ``ops.MODE_THRESHOLD``; both constants and why they work are
        in :mod:`gluon_atac.ops.build`). momentum=1 leaves the running statistics it
        shares with ``bn`` untouched.
        """
        channels = bn.gamma.shape[0]
        span = ops.MODE_PROBE_SPAN
        probe = F.broadcast_to(F.reshape(F.arange(0, 2 * span, span, **ctx),
                                         shape=(1, 1, 2)), shape=(1, channels, 2))
        return F.BatchNorm(probe, F.ones((channels,), **ctx), F.zeros((channels,), **ctx),
                           running_mean, running_var, eps=bn._kwargs['eps'], momentum=1.0,
                           fix_gamma=True, use_global_stats=False)

    @staticmethod
    def _single(out):
        return out[0] if isinstance(out, (list, tuple)) else out

    def _fused_forward(self, F, x):
        conv1, bn1, conv2, bn2 = self._layers()
        args, ctx = self._native_args(F, x, [
            conv1.weight, bn1.gamma, bn1.beta, bn1.running_mean, bn1.running_var,
            conv2.weight, bn2.gamma, bn2.beta, bn2.running_mean, bn2.running_var])
        mode = self._mode_probe(F, ctx, bn1, args[3], args[4])
        return self._single(getattr(F, self.native_op)(
            x, mode, *args, eps1=bn1._kwargs['eps'], eps2=bn2._kwargs['eps'],
            momentum1=bn1._kwargs['momentum'], momentum2=bn2._kwargs['momentum'],
            use_relu=int(self.use_relu)))

    def __repr__(self):
        return '{}(channels={}, r={}, use_relu={}, use_global={})'.format(
            self.__class__.__name__, self.channels, self.r, self.use_relu, self.use_global)


def set_fused(net, fused):
    """Set ``fused`` on every ATAC unit in ``net``; return their previous settings.

    Parameters
    ----------
    net : mxnet.gluon.Block
    fused : bool or None
        ``False`` runs the plain Gluon graph: exported files then load in any MXNet (the
        fused operator lives in a native library) and symbol walks see the gate's
        convolutions. ``None`` lets each unit choose.

    Returns
    -------
    list of (ChaATAC, bool or None)
    """
    units = []
    net.apply(lambda block: units.append(block) if isinstance(block, ChaATAC) else None)
    previous = [(unit, unit.fused) for unit in units]
    for unit in units:
        unit.fused = fused
    return previous


@contextlib.contextmanager
def gluon_graph(net):
    """Within the block, every ATAC unit of ``net`` runs the plain Gluon graph.

    For work that must see the gate's layers (counting, hooks on ``module``); the units'
    settings come back afterwards. A graph hybridized inside keeps the Gluon path.
    """
    previous = set_fused(net, False)
    try:
        yield net
    finally:
        for unit, fused in previous:
            unit.fused = fused
