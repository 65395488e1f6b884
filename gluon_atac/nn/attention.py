"""Attention baselines the paper compares ATAC with, chosen by name.

Both modules gate a residual branch with a C x 1 x 1 channel attention computed from
global context; hosts place them on the branch just before the residual sum, as their
papers do.
"""
from mxnet.gluon import nn

from ..registry import Registry

__all__ = ['ATTENTION', 'SqueezeExcite', 'GatherExcite', 'get_attention', 'attention_names',
           'canonical_attention']


def _inner_width(channels, reduction):
    if not isinstance(reduction, int) or isinstance(reduction, bool) or reduction <= 0:
        raise ValueError('attention reduction must be a positive integer, got %r'
                         % (reduction,))
    # SE on a 16-channel CIFAR stage with the paper's reduction 16 keeps one unit.
    return max(1, channels // reduction)


def _excite(channels, reduction):
    """Bottleneck MLP as 1x1 convolutions with bias: ``C -> C/r -> ReLU -> C -> sigmoid``."""
    inner = _inner_width(channels, reduction)
    excite = nn.HybridSequential(prefix='excite_')
    with excite.name_scope():
        excite.add(nn.Conv2D(inner, 1, in_channels=channels))
        excite.add(nn.Activation('relu'))
        excite.add(nn.Conv2D(channels, 1, in_channels=inner))
        excite.add(nn.Activation('sigmoid'))
    return excite


class SqueezeExcite(nn.HybridBlock):
    """Squeeze-and-excitation (Hu, Shen, Sun, CVPR 2018).

    ``y = x * sigmoid(W2 relu(W1 avgpool(x)))`` with fully connected ``W1`` (C -> C/r)
    and ``W2`` (C/r -> C), both with bias, written as 1x1 convolutions on the pooled map.

    Parameters
    ----------
    channels : int
        Channels of the input.
    reduction : int, default 16
        Bottleneck ratio of the excitation MLP (the SE paper's choice).
    """

    def __init__(self, channels, reduction=16, **kwargs):
        super(SqueezeExcite, self).__init__(**kwargs)
        self.channels, self.reduction = channels, reduction
        with self.name_scope():
            self.pool = nn.GlobalAvgPool2D()
            self.excite = _excite(channels, reduction)

    def hybrid_forward(self, F, x):
        return F.broadcast_mul(x, self.excite(self.pool(x)))

    def __repr__(self):
        return '%s(channels=%d, reduction=%d)' % (self.__class__.__name__, self.channels,
                                                  self.reduction)


class GatherExcite(nn.HybridBlock):
    """Gather-Excite GE-θ+ with global extent (Hu, Shen, Albanie, Sun, Vedaldi, NeurIPS 2018).

    The parametric gather is a depthwise convolution whose kernel covers the whole
    ``spatial x spatial`` feature map (one learned spatial weighting per channel, the
    paper's global-extent GE-θ), followed by BN; the ``+`` is the parametric excite, the
    SE bottleneck MLP, before the sigmoid. With the paper's ResNet-50 this gives its
    33.7M parameters (GE-θ alone: 31.2M).

    Parameters
    ----------
    channels : int
        Channels of the input.
    spatial : int
        Side of the feature map at the training resolution (56/28/14/7 for ResNet-50 at
        224, 32/16/8 for CIFAR). Other input sizes are average-pooled to it first, so a
        trained model still runs on them.
    reduction : int, default 16
        Bottleneck ratio of the excitation MLP.
    norm_layer : type, default :class:`mxnet.gluon.nn.BatchNorm`
    norm_kwargs : dict, optional
    """

    def __init__(self, channels, spatial, reduction=16, norm_layer=nn.BatchNorm,
                 norm_kwargs=None, **kwargs):
        super(GatherExcite, self).__init__(**kwargs)
        if not isinstance(spatial, int) or isinstance(spatial, bool) or spatial <= 0:
            raise ValueError('Gather-Excite needs the feature map side `spatial` as a '
                             'positive integer, got %r' % (spatial,))
        self.channels, self.spatial, self.reduction = channels, spatial, reduction
        with self.name_scope():
            self.gather = nn.Conv2D(channels, spatial, groups=channels, use_bias=False,
                                    in_channels=channels)
            self.gather_bn = norm_layer(in_channels=channels, **(norm_kwargs or {}))
            self.excite = _excite(channels, reduction)

    def hybrid_forward(self, F, x):
        # Identity at the training resolution; lets other sizes reach the fixed kernel.
        context = F.contrib.AdaptiveAvgPooling2D(x, output_size=self.spatial)
        context = self.gather_bn(self.gather(context))
        return F.broadcast_mul(x, self.excite(context))

    def __repr__(self):
        return '%s(channels=%d, spatial=%d, reduction=%d)' % (
            self.__class__.__name__, self.channels, self.spatial, self.reduction)


def _ge(channels, spatial=None, **kwargs):
    return GatherExcite(channels, spatial, **kwargs)


ATTENTION = Registry('attention', separator_insensitive=True)
ATTENTION.register('se', SqueezeExcite, options=('reduction',), aliases=('squeeze_excite',))
ATTENTION.register('ge', _ge, options=('spatial', 'reduction', 'norm_layer', 'norm_kwargs'),
                   aliases=('gather_excite', 'ge_theta_plus'))


def attention_names():
    """Accepted attention names (aliases included), sorted."""
    return ATTENTION.names()


def canonical_attention(name):
    """Map a case-insensitive attention name or alias to its registry key.

    Raises
    ------
    ValueError
        If ``name`` is unknown; the message lists the valid names.
    """
    return ATTENTION.canonical(name)


def get_attention(name, channels, **kwargs):
    """Build the attention module ``name`` for a branch with ``channels`` channels.

    Parameters
    ----------
    name : str
        Case-insensitive: ``'se'`` (squeeze-and-excitation) or ``'ge'`` (Gather-Excite
        GE-θ+ with global extent), or an alias from :func:`attention_names`.
    channels : int
        Channels of the branch the module gates.
    **kwargs
        Module options (``reduction``, ``spatial``, ``norm_layer``, ``norm_kwargs``).
        Options a module has no use for are ignored, so a host can pass one set to every
        module; an option no module knows is an error.

    Returns
    -------
    mxnet.gluon.HybridBlock
    """
    return ATTENTION.build(name, channels, **kwargs)
