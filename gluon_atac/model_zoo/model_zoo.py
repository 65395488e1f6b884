"""Registry of named networks: ``get_model(name, **kwargs)`` as in GluonCV."""
from .config import MODELS
from .params import load_parameters
# Imported for their registrations.
from . import cifar_resnet, resnetv1b  # noqa: F401

__all__ = ['get_model', 'get_model_list', 'get_model_config']


def get_model_list():
    """Names accepted by :func:`get_model`, in natural order (``cifar_resnet8_v2`` first)."""
    return MODELS.names()


def get_model_config(name):
    """The registered defaults of ``name`` (:class:`~gluon_atac.model_zoo.config.ModelConfig`:
    classes, input size, crop ratio, data set, mean/std, act_layers).

    Raises
    ------
    ValueError
        Unknown name; the message lists the valid ones.
    """
    return MODELS.config(name)


def get_model(name, pretrained=None, ctx=None, **kwargs):
    """Build a registered network.

    Parameters
    ----------
    name : str
        One of :func:`get_model_list` (case-insensitive), e.g. ``'cifar_resnet20_v2'`` or
        ``'resnet50_v1b'``.
    pretrained : str, optional
        Path of a ``.params`` file to load (nothing is downloaded, so GluonCV's
        ``pretrained=True`` is refused). Names and shapes are checked first; a file of
        another architecture raises ``ValueError``.
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
    if pretrained is not None and not isinstance(pretrained, str):
        raise ValueError('pretrained=%r: gluon_atac downloads nothing; give the path of a '
                         '.params file, e.g. pretrained=\'runs/x/best.params\''
                         % (pretrained,))
    entry = MODELS.get(name)
    kwargs.setdefault('act_layers', entry.config.act_layers)
    kwargs.setdefault('classes', entry.config.classes)
    net = entry.builder(**kwargs)
    if pretrained:
        load_parameters(net, pretrained, ctx=ctx)
    return net
