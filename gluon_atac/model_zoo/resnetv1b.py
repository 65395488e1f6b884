"""ResNet v1b family with attentional activations, built by GluonCV's ResNetV1b."""
import functools
import math

from mxnet.gluon import nn

from ..nn import get_activation, canonical_name, get_norm
from ..nn.attention import get_attention, canonical_attention
from ..nn.self_attention import SPATIAL_OPS, get_spatial_op
from .config import IMAGENET_CONFIG, MODELS

__all__ = ['BottleneckV1bAct', 'BasicBlockV1bAct', 'ActBlockFactory', 'resnet_v1b',
           'RESNET_LAYERS', 'SELF_ATTENTION_BASELINES']

RESNET_LAYERS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3],
                 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}

# GluonCV's stem/shortcut options that make v1c, v1d out of the v1b builder.
_VARIANTS = {'b': {}, 'c': {'deep_stem': True},
             'd': {'deep_stem': True, 'avg_down': True}}


def _branch_attention(attention, channels, norm_layer, norm_kwargs, attention_kwargs):
    """The attention module gating a residual branch, or ``None`` (no child, no names)."""
    if attention is None:
        return None
    return get_attention(attention, channels, norm_layer=norm_layer, norm_kwargs=norm_kwargs,
                         **(attention_kwargs or {}))


class BasicBlockV1bAct(nn.HybridBlock):
    """ResNet v1b basic block whose first activation is chosen by name.

    Same signature and parameter names as GluonCV's ``BasicBlockV1b``; the activation
    after the residual sum stays a ReLU.

    Parameters
    ----------
    planes : int
    strides : int, default 1
    dilation : int, default 1
    downsample : HybridBlock, optional
    previous_dilation : int, default 1
    norm_layer : type
    norm_kwargs : dict, optional
    act_type : str, default 'relu'
    act_kwargs : dict, optional
        Options for :func:`gluon_atac.get_activation`.
    attention : str, optional
        Attention module gating the residual branch (after bn2, before the sum).
    attention_kwargs : dict, optional
        Options for :func:`gluon_atac.nn.attention.get_attention`.
    """
    expansion = 1

    def __init__(self, planes, strides=1, dilation=1, downsample=None, previous_dilation=1,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, act_type='relu', act_kwargs=None,
                 last_gamma=False, attention=None, attention_kwargs=None, **kwargs):
        super(BasicBlockV1bAct, self).__init__(**kwargs)
        norm_kwargs = norm_kwargs or {}
        act_kwargs = dict(act_kwargs or {}, norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        self.conv1 = nn.Conv2D(planes, 3, strides, dilation, dilation, use_bias=False)
        self.bn1 = norm_layer(in_channels=planes, **norm_kwargs)
        self.relu1 = get_activation(act_type, planes, **act_kwargs)
        self.conv2 = nn.Conv2D(planes, 3, 1, previous_dilation, previous_dilation,
                               use_bias=False)
        gamma_init = {'gamma_initializer': 'zeros'} if last_gamma else {}
        self.bn2 = norm_layer(in_channels=planes, **gamma_init, **norm_kwargs)
        self.relu2 = nn.Activation('relu')
        self.downsample = downsample
        self.attention = _branch_attention(attention, planes, norm_layer, norm_kwargs,
                                           attention_kwargs)

    def hybrid_forward(self, F, x):
        residual = self.downsample(x) if self.downsample is not None else x
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.attention is not None:
            out = self.attention(out)
        return self.relu2(out + residual)


class BottleneckV1bAct(nn.HybridBlock):
    """ResNet v1b bottleneck (stride on the 3x3) whose relu1/relu2 are chosen by name.

    Same signature and parameter names as GluonCV's ``BottleneckV1b``: with
    ``act_type='relu'`` a parameter file of ``resnet50_v1b`` loads unchanged. The ReLU
    after the residual sum stays.

    Parameters
    ----------
    planes : int
    strides : int, default 1
    dilation : int, default 1
    downsample : HybridBlock, optional
    previous_dilation : int, default 1
    norm_layer : type
    norm_kwargs : dict, optional
    last_gamma : bool, default False
        Initialize the gamma of bn3 to zero.
    act_type : str, default 'relu'
    act_kwargs : dict, optional
        Options for :func:`gluon_atac.get_activation`.
    attention : str, optional
        Attention module gating the residual branch (after bn3, before the sum).
    attention_kwargs : dict, optional
        Options for :func:`gluon_atac.nn.attention.get_attention`.
    spatial_op : str, optional
        Self-attention layer in place of the 3x3 convolution (``'aa'``, ``'sasa'``; see
        :func:`gluon_atac.nn.self_attention.get_spatial_op`); it keeps the name ``conv2``.
    spatial_kwargs : dict, optional
        Its options (``spatial``, ``heads`` ...).
    """
    expansion = 4

    def __init__(self, planes, strides=1, dilation=1, downsample=None, previous_dilation=1,
                 norm_layer=nn.BatchNorm, norm_kwargs=None, last_gamma=False,
                 act_type='relu', act_kwargs=None, attention=None, attention_kwargs=None,
                 spatial_op=None, spatial_kwargs=None, **kwargs):
        super(BottleneckV1bAct, self).__init__(**kwargs)
        norm_kwargs = norm_kwargs or {}
        act_kwargs = dict(act_kwargs or {}, norm_layer=norm_layer, norm_kwargs=norm_kwargs)
        self.conv1 = nn.Conv2D(planes, 1, use_bias=False)
        self.bn1 = norm_layer(in_channels=planes, **norm_kwargs)
        self.relu1 = get_activation(act_type, planes, **act_kwargs)
        if spatial_op is None:
            self.conv2 = nn.Conv2D(planes, 3, strides, dilation, dilation, use_bias=False)
        elif dilation != 1:
            raise ValueError('%s replaces an undilated 3x3 convolution; dilation %d is not '
                             'supported' % (spatial_op, dilation))
        else:
            self.conv2 = get_spatial_op(spatial_op, planes, planes, strides=strides,
                                        **(spatial_kwargs or {}))
        self.bn2 = norm_layer(in_channels=planes, **norm_kwargs)
        self.relu2 = get_activation(act_type, planes, **act_kwargs)
        self.conv3 = nn.Conv2D(planes * 4, 1, use_bias=False)
        gamma_init = {'gamma_initializer': 'zeros'} if last_gamma else {}
        self.bn3 = norm_layer(in_channels=planes * 4, **gamma_init, **norm_kwargs)
        self.relu3 = nn.Activation('relu')
        self.downsample = downsample
        self.attention = _branch_attention(attention, planes * 4, norm_layer, norm_kwargs,
                                           attention_kwargs)

    def hybrid_forward(self, F, x):
        residual = self.downsample(x) if self.downsample is not None else x
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.attention is not None:
            out = self.attention(out)
        return self.relu3(out + residual)


class ActBlockFactory(object):
    """A block 'class' for GluonCV's ``ResNetV1b`` builder that picks each stage's act.

    The builder calls ``block(planes, ...)`` with planes 64/128/256/512 for stages 1-4 and
    reads ``block.expansion``; stage ``k`` gets ``act_type`` when ``act_layers >= 5 - k``
    (the deepest stages first), the others ``replace_act``.

    Parameters
    ----------
    block : type
        :class:`BottleneckV1bAct` or :class:`BasicBlockV1bAct`.
    act_type : str
    act_layers : int
    act_kwargs : dict
    replace_act : str, default 'relu'
    attention : str, optional
        Attention module for every block's residual branch.
    attention_kwargs : dict, optional
        Its options; ``spatial`` is filled in per stage from ``input_size``.
    input_size : int, default 224
        Training resolution, which fixes GE's gather kernel (56/28/14/7 at 224) and the
        map size of the self-attention layers.
    dilated : bool, default False
        Whether stages 3-4 keep stage 2's resolution (GluonCV's ``dilated``).
    spatial_op : str, optional
        Self-attention layer replacing the 3x3 convolution of the blocks of
        ``spatial_stages`` (bottlenecks only).
    spatial_kwargs : dict, optional
        Its options; ``spatial`` is filled in per stage.
    spatial_stages : tuple of int, default (1, 2, 3, 4)
    """

    def __init__(self, block, act_type, act_layers, act_kwargs, replace_act='relu',
                 attention=None, attention_kwargs=None, input_size=224, dilated=False,
                 spatial_op=None, spatial_kwargs=None, spatial_stages=(1, 2, 3, 4)):
        self.block, self.expansion = block, block.expansion
        self.act_type, self.act_layers, self.replace_act = act_type, act_layers, replace_act
        self.act_kwargs = act_kwargs
        self.attention, self.attention_kwargs = attention, attention_kwargs or {}
        self.input_size, self.dilated = input_size, dilated
        self.spatial_op, self.spatial_kwargs = spatial_op, spatial_kwargs or {}
        self.spatial_stages = tuple(spatial_stages)

    def stage_act(self, stage):
        """Activation name of stage ``stage`` (1..4)."""
        return self.act_type if self.act_layers >= 5 - stage else self.replace_act

    def stage_spatial(self, stage):
        """Side of stage ``stage``'s feature map (stem /4, then /2 per stage)."""
        side = self.input_size
        for _ in range(2 + min(stage, 2 if self.dilated else 4) - 1):
            side = -(-side // 2)
        return side

    def __call__(self, planes, *args, **kwargs):
        stage = int(round(math.log2(planes // 64))) + 1
        attention_kwargs = dict(self.attention_kwargs, spatial=self.stage_spatial(stage))
        if self.spatial_op is not None and stage in self.spatial_stages:
            # Only bottlenecks take the option, so basic blocks keep their signature.
            kwargs.update(spatial_op=self.spatial_op, spatial_kwargs=dict(
                self.spatial_kwargs, spatial=self.stage_spatial(stage)))
        return self.block(planes, *args, act_type=self.stage_act(stage),
                          act_kwargs=self.act_kwargs, attention=self.attention,
                          attention_kwargs=attention_kwargs, **kwargs)


def resnet_v1b(num_layers, variant='b', act_type='ChaATAC', r=2, use_relu=True,
               use_global=False, act_layers=2, replace_act='relu', act_kwargs=None,
               attention=None, attention_kwargs=None, input_size=224, spatial_op=None,
               spatial_kwargs=None, spatial_stages=(1, 2, 3, 4), **kwargs):
    """ResNet v1b/v1c/v1d with attentional activations in the deepest stages.

    Parameters
    ----------
    num_layers : int
        18, 34, 50, 101 or 152.
    variant : {'b', 'c', 'd'}, default 'b'
        Stem and shortcut as GluonCV's v1b (7x7 stem), v1c (deep stem) or v1d (deep stem,
        average-pool shortcut).
    act_type : str, default 'ChaATAC'
    r : int, default 2
    use_relu : bool, default True
    use_global : bool, default False
    act_layers : int, default 2
        Stages (from the deepest) that use ``act_type``; 2 = stages 3 and 4 (the paper).
    replace_act : str, default 'relu'
    act_kwargs : dict, optional
        Further unit options.
    attention : {None, 'se', 'ge'}, default None
        Attention baseline on every block's residual branch, before the sum (SE-ResNet,
        GE-θ+-ResNet). ``None`` keeps GluonCV's parameter names.
    attention_kwargs : dict, optional
        Further attention options (``reduction``, default 16).
    input_size : int, default 224
        Training resolution; GE (its gather kernel spans each map) and the self-attention
        layers (fixed map sizes) depend on it.
    spatial_op : {None, 'aa', 'sasa'}, default None
        Self-attention in place of the bottlenecks' 3x3 convolutions: attention-augmented
        convolution (AA-ResNet) or stand-alone local self-attention (FA-ResNet); see
        :mod:`gluon_atac.nn.self_attention`. Needs ``num_layers >= 50``.
    spatial_kwargs : dict, optional
        Its options (``heads``, ``key_ratio``, ``value_ratio``, ``kernel_size``).
    spatial_stages : tuple of int, default (1, 2, 3, 4)
        Stages whose bottlenecks use ``spatial_op``.
    **kwargs
        Passed to GluonCV's ``ResNetV1b`` (``classes``, ``norm_layer``, ``norm_kwargs``,
        ``last_gamma``, ``deep_stem``, ``avg_down``, ``final_drop``, ``dilated`` ...).
    """
    if num_layers not in RESNET_LAYERS:
        raise ValueError('num_layers must be one of %s, got %r'
                         % (sorted(RESNET_LAYERS), num_layers))
    canonical_name(act_type)
    canonical_name(replace_act)
    if attention is not None:
        canonical_attention(attention)
    if spatial_op is not None:
        SPATIAL_OPS.canonical(spatial_op)
        if num_layers < 50:
            raise ValueError('spatial_op replaces bottleneck convolutions; ResNet-%d has '
                             'none' % num_layers)
    block = BottleneckV1bAct if num_layers >= 50 else BasicBlockV1bAct
    unit_kwargs = dict(act_kwargs or {}, r=r, use_relu=use_relu, use_global=use_global)
    factory = ActBlockFactory(block, act_type, act_layers, unit_kwargs, replace_act,
                              attention, attention_kwargs, input_size,
                              kwargs.get('dilated', False), spatial_op, spatial_kwargs,
                              spatial_stages)
    if 'norm_layer' in kwargs:
        kwargs['norm_layer'] = get_norm(kwargs['norm_layer'])
    options = dict(_VARIANTS[variant], **kwargs)
    # Imported here: importing gluoncv loads its whole package (data, utils, tqdm), which
    # `import gluon_atac` and the CIFAR hosts do not need.
    from gluoncv.model_zoo.resnetv1b import ResNetV1b
    return ResNetV1b(factory, RESNET_LAYERS[num_layers],
                     name_prefix='resnetv1%s_' % variant, **options)


# The papers' self-attention baselines (docs/paper.md, "Baselines"), plain ReLU networks:
# AA-ResNet-50 augments the 3x3 convolutions of the last three stages with κ = 2υ = 0.2
# and 8 heads (Bello et al.); FA-ResNet-50 replaces every bottleneck's 3x3 convolution by
# 7x7 local self-attention with 8 heads and keeps the convolutional stem (Ramachandran
# et al.'s conv-stem network).
SELF_ATTENTION_BASELINES = {
    'aa': dict(spatial_op='aa', spatial_stages=(2, 3, 4),
               spatial_kwargs=dict(key_ratio=0.2, value_ratio=0.1, heads=8)),
    'fa': dict(spatial_op='sasa', spatial_stages=(1, 2, 3, 4),
               spatial_kwargs=dict(kernel_size=7, heads=8)),
}

for _depth in RESNET_LAYERS:
    for _variant in _VARIANTS:
        MODELS.register('resnet%d_v1%s' % (_depth, _variant),
                        functools.partial(resnet_v1b, _depth, _variant), config=IMAGENET_CONFIG)
for _suffix, _options in SELF_ATTENTION_BASELINES.items():
    MODELS.register('resnet50_v1b_%s' % _suffix,
                    functools.partial(resnet_v1b, 50, 'b', act_type='relu', **_options),
                    config=IMAGENET_CONFIG)
