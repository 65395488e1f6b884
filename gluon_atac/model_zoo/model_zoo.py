"""Registry of named networks: ``get_model(name, **kwargs)`` as in GluonCV."""
import functools

from .cifar_resnet import cifar_resnet_v2
from .resnetv1b import resnet_v1b, RESNET_LAYERS
from .params import load_parameters

__all__ = ['get_model', 'get_model_list']

_MODELS = {}
for _b in range(1, 19):
    _MODELS['cifar_resnet%d_v2' % (6 * _b + 2)] = functools.partial(cifar_resnet_v2, 6 * _b + 2)
for _depth in sorted(RESNET_LAYERS):
    for _variant in 'bcd':
        _MODELS['resnet%d_v1%s' % (_depth, _variant)] = functools.partial(
            resnet_v1b, _depth, _variant)


def get_model_list():
    """Names accepted by :func:`get_model`, sorted."""
    return sorted(_MODELS)


def get_model(name, pretrained=None, ctx=None, **kwargs):
    """Build a registered network.

    Parameters
    ----------
    name : str
        One of :func:`get_model_list` (case-insensitive), e.g. ``'cifar_resnet20_v2'`` or
        ``'resnet50_v1b'``.
    pretrained : str, optional
        Path of a ``.params`` file to load (nothing is downloaded). Names and shapes are
        checked first; a file of another architecture raises ``ValueError``.
    ctx : Context or list of Context, optional
        Where to load ``pretrained`` parameters.
    **kwargs
        Model options: ``classes, act_type, r, use_relu, use_global, act_layers`` and the
        host's (``act_order``, ``replace_act``, ``norm_layer``, ``norm_kwargs``,
        ``last_gamma`` ...). Defaults reproduce the paper: ATAC r=2 with inner ReLU and
        local context, in all CIFAR places and in stages 3-4 of a ResNet.

    Returns
    -------
    mxnet.gluon.HybridBlock
        Uninitialized unless ``pretrained`` is given.
    """
    key = str(name).lower()
    if key not in _MODELS:
        raise ValueError('unknown model %r; valid names: %s'
                         % (name, ', '.join(get_model_list())))
    net = _MODELS[key](**kwargs)
    if pretrained:
        load_parameters(net, pretrained, ctx=ctx)
    return net
