"""Activation functions the paper compares ATAC against."""
from mxnet.gluon import nn

__all__ = ['XUnit']


class XUnit(nn.HybridBlock):
    r"""xUnit (Kligvasser et al., CVPR 2018): a spatial gate ``y = x * exp(-d^2)``.

    ``d = BN(DepthwiseConv_k(ReLU(BN(x))))``. The original uses a 9x9 depthwise kernel
    for image restoration; on CIFAR feature maps (32 to 8 pixels) we default to 3x3,
    which keeps the unit's parameter cost at ``9C + 4C`` (+ BN statistics).

    Parameters
    ----------
    channels : int
        Number of channels of the input.
    kernel_size : int, default 3
        Size of the depthwise kernel (odd).
    norm_layer : type, default :class:`mxnet.gluon.nn.BatchNorm`
        Normalization layer.
    norm_kwargs : dict, optional
        Extra arguments for ``norm_layer``.
    """

    def __init__(self, channels, kernel_size=3, norm_layer=nn.BatchNorm, norm_kwargs=None,
                 **kwargs):
        super(XUnit, self).__init__(**kwargs)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError('xUnit kernel_size must be a positive odd integer, got %r'
                             % (kernel_size,))
        norm_kwargs = norm_kwargs or {}
        with self.name_scope():
            self.module = nn.HybridSequential(prefix='module_')
            with self.module.name_scope():
                self.module.add(norm_layer(in_channels=channels, **norm_kwargs))
                self.module.add(nn.Activation('relu'))
                self.module.add(nn.Conv2D(channels, kernel_size, padding=kernel_size // 2,
                                          groups=channels, use_bias=False,
                                          in_channels=channels))
                self.module.add(norm_layer(in_channels=channels, **norm_kwargs))

    def hybrid_forward(self, F, x):
        d = self.module(x)
        return F.broadcast_mul(x, F.exp(-F.square(d)))
