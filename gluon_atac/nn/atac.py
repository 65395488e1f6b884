"""Attentional activation units (ATAC): ``y = x * sigmoid(L(x))``."""
from mxnet.gluon import nn

__all__ = ['ChaATAC', 'check_reduction']


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

    Notes
    -----
    Children of ``module`` carry the original code's indices (0 conv, 1 BN, 2 ReLU, 3 conv,
    4 BN, 5 sigmoid; shifted by one with ``use_global``), so its ``.params`` files load.
    """

    def __init__(self, channels, r=2, use_relu=True, use_global=False,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, **kwargs):
        super(ChaATAC, self).__init__(**kwargs)
        inter_channels = check_reduction(channels, r)
        norm_kwargs = norm_kwargs or {}
        self.channels, self.r = channels, r
        self.use_relu, self.use_global = use_relu, use_global
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
        # broadcast_mul keeps the op on oneDNN and covers the C x 1 x 1 global gate.
        return F.broadcast_mul(x, self.module(x))

    def __repr__(self):
        return '{}(channels={}, r={}, use_relu={}, use_global={})'.format(
            self.__class__.__name__, self.channels, self.r, self.use_relu, self.use_global)
