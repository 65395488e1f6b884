"""Pre-activation ResNet v2 for CIFAR (depth 6b+2) with activations chosen by name."""
import functools

from mxnet.gluon import nn

from ..nn import get_activation, canonical_name, get_norm
from ..nn.attention import get_attention, canonical_attention
from .config import CIFAR_CONFIG, MODELS

__all__ = ['CIFARBlockV2', 'CIFARResNetV2', 'cifar_resnet_v2', 'stage_act_types']

_WIDTHS = (16, 32, 64)
_STRIDES = (1, 2, 2)
_INPUT_SIZE = 32


def stage_act_types(act_type, act_layers=4, act_order='bac', replace_act='relu'):
    """Which activation each of the three stages and the head uses.

    Parameters
    ----------
    act_type : str
        The activation under study.
    act_layers : int, default 4
        How many places (3 stages + head) use ``act_type``.
    act_order : {'bac', 'pre'}, default 'bac'
        ``'bac'`` fills places from the head backwards (1 = head only), ``'pre'`` from the
        first stage forwards (4 = everywhere).
    replace_act : str, default 'relu'
        Activation of the other places.

    Returns
    -------
    (list of str, str)
        Activation of each stage and of the head.
    """
    if act_order == 'bac':
        stages = [act_type if i + act_layers >= 4 else replace_act for i in range(3)]
        head = act_type if act_layers > 0 else replace_act
    elif act_order == 'pre':
        stages = [act_type if i + 1 <= act_layers else replace_act for i in range(3)]
        head = act_type if act_layers >= 4 else replace_act
    else:
        raise ValueError("act_order must be 'bac' or 'pre', got %r" % (act_order,))
    return stages, head


class CIFARBlockV2(nn.HybridBlock):
    """Pre-activation basic block: ``BN-act1-conv3x3-BN-act2-conv3x3`` plus the shortcut.

    When the width or stride changes the shortcut is a bias-free 1x1 convolution of the
    raw block input (the original's choice; GluonCV's v2 block projects the activated one).

    Parameters
    ----------
    in_channels : int
        Input width; ``act1`` acts on it.
    channels : int
        Output width; ``act2`` acts on it.
    stride : int
        Stride of the first convolution and of the projection.
    act_type : str
        Name for :func:`gluon_atac.get_activation`.
    act_kwargs : dict, optional
        Options for the activation units (``r``, ``use_relu``, ``use_global`` ...).
    norm_layer : type, default :class:`mxnet.gluon.nn.BatchNorm`
    norm_kwargs : dict, optional
    attention : str, optional
        Attention module (``'se'``, ``'ge'``) gating the residual branch before the sum;
        ``None`` adds nothing, so parameter names stay the original's.
    attention_kwargs : dict, optional
        Options for :func:`gluon_atac.nn.attention.get_attention` (``spatial`` for GE).
    """

    def __init__(self, in_channels, channels, stride, act_type='relu', act_kwargs=None,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, attention=None,
                 attention_kwargs=None, **kwargs):
        super(CIFARBlockV2, self).__init__(**kwargs)
        norm_kwargs = norm_kwargs or {}
        act_kwargs = dict(act_kwargs or {}, norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        with self.name_scope():
            self.bn1 = norm_layer(in_channels=in_channels, **norm_kwargs)
            self.conv1 = nn.Conv2D(channels, 3, stride, 1, use_bias=False,
                                   in_channels=in_channels)
            self.bn2 = norm_layer(in_channels=channels, **norm_kwargs)
            self.conv2 = nn.Conv2D(channels, 3, 1, 1, use_bias=False, in_channels=channels)
            if stride != 1 or in_channels != channels:
                self.downsample = nn.Conv2D(channels, 1, stride, use_bias=False,
                                            in_channels=in_channels)
            else:
                self.downsample = None
            # Attribute names are the original's, so its parameter files load.
            self.msAA1 = get_activation(act_type, in_channels, **act_kwargs)
            self.msAA2 = get_activation(act_type, channels, **act_kwargs)
            if attention is not None:
                self.attention = get_attention(attention, channels, norm_layer=norm_layer,
                                               norm_kwargs=norm_kwargs,
                                               **(attention_kwargs or {}))
            else:
                self.attention = None

    def hybrid_forward(self, F, x):
        residual = self.downsample(x) if self.downsample is not None else x
        out = self.conv1(self.msAA1(self.bn1(x)))
        out = self.conv2(self.msAA2(self.bn2(out)))
        if self.attention is not None:
            out = self.attention(out)
        return out + residual


class CIFARResNetV2(nn.HybridBlock):
    """Pre-activation ResNet for 32x32 inputs, ``6 * blocks + 2`` layers deep.

    Parameters
    ----------
    blocks : int
        Blocks per stage (3 stages of width 16/32/64).
    classes : int, default 10
    act_type : str, default 'ChaATAC'
        Activation under study, by name (``'ChaATAC'``/``'atac'`` for ATAC).
    r : int, default 2
        ATAC reduction ratio.
    use_relu : bool, default True
        ATAC inner ReLU.
    use_global : bool, default False
        ATAC with global (pooled) context.
    act_layers : int, default 4
        Places (3 stages + head) that use ``act_type``; see :func:`stage_act_types`.
    act_order : {'bac', 'pre'}, default 'bac'
    replace_act : str, default 'relu'
        Activation of the places that do not use ``act_type``.
    norm_layer : type or str, default :class:`mxnet.gluon.nn.BatchNorm`
        A class, or a name of :data:`gluon_atac.nn.NORMS` (``batchnorm``, ``syncbatchnorm``,
        ``groupnorm``) as a model card stores it.
    norm_kwargs : dict, optional
    act_kwargs : dict, optional
        Further unit options (e.g. ``kernel_size`` of xUnit).
    attention : {None, 'se', 'ge'}, default None
        Attention baseline on every block's residual branch, before the sum.
    attention_kwargs : dict, optional
        Further attention options (``reduction``, default 16). GE's gather kernel is set
        to each stage's map side for 32x32 inputs.
    """

    def __init__(self, blocks, classes=10, act_type='ChaATAC', r=2, use_relu=True,
                 use_global=False, act_layers=4, act_order='bac', replace_act='relu',
                 norm_layer=nn.BatchNorm, norm_kwargs=None, act_kwargs=None, attention=None,
                 attention_kwargs=None, **kwargs):
        super(CIFARResNetV2, self).__init__(**kwargs)
        if not isinstance(blocks, int) or blocks < 1:
            raise ValueError('blocks must be a positive integer, got %r' % (blocks,))
        canonical_name(act_type)
        canonical_name(replace_act)
        if attention is not None:
            canonical_attention(attention)
        norm_layer, norm_kwargs = get_norm(norm_layer), norm_kwargs or {}
        unit_kwargs = dict(act_kwargs or {}, r=r, use_relu=use_relu, use_global=use_global)
        stage_acts, head_act = stage_act_types(act_type, act_layers, act_order, replace_act)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            self.features.add(norm_layer(scale=False, center=False, in_channels=3,
                                         **norm_kwargs))
            self.features.add(nn.Conv2D(_WIDTHS[0], 3, 1, 1, use_bias=False, in_channels=3))
            in_channels, spatial = _WIDTHS[0], _INPUT_SIZE
            for i, (width, stride) in enumerate(zip(_WIDTHS, _STRIDES)):
                spatial //= stride
                attn_kwargs = dict(attention_kwargs or {}, spatial=spatial)
                stage = nn.HybridSequential(prefix='stage%d_' % (i + 1))
                with stage.name_scope():
                    for j in range(blocks):
                        stage.add(CIFARBlockV2(in_channels, width, stride if j == 0 else 1,
                                               stage_acts[i], unit_kwargs, norm_layer,
                                               norm_kwargs, attention, attn_kwargs))
                        in_channels = width
                self.features.add(stage)
            self.features.add(norm_layer(in_channels=in_channels, **norm_kwargs))
            self.features.add(get_activation(head_act, in_channels, norm_layer=norm_layer,
                                             norm_kwargs=norm_kwargs, **unit_kwargs))
            self.features.add(nn.GlobalAvgPool2D())
            self.features.add(nn.Flatten())
            self.output = nn.Dense(classes, in_units=in_channels)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def cifar_resnet_v2(depth, **kwargs):
    """Build the CIFAR pre-activation ResNet of ``depth = 6 * blocks + 2`` layers.

    Like GluonCV's zoo the network comes uninitialized; the original trains it from
    ``mx.init.MSRAPrelu()``.

    Parameters
    ----------
    depth : int
        8, 14, 20, ... (``6b + 2``).
    **kwargs
        Passed to :class:`CIFARResNetV2`.
    """
    if (depth - 2) % 6 or depth < 8:
        raise ValueError('CIFAR ResNet depth must be 6b+2 with b >= 1, got %d' % depth)
    return CIFARResNetV2((depth - 2) // 6, **kwargs)


for _blocks in range(1, 19):
    MODELS.register('cifar_resnet%d_v2' % (6 * _blocks + 2),
                    functools.partial(cifar_resnet_v2, 6 * _blocks + 2), config=CIFAR_CONFIG)
