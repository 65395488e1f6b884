"""One registry for every activation and attentional activation, chosen by name."""
from mxnet.gluon import nn

from .atac import ChaATAC
from .activations import XUnit
from ..registry import Registry

__all__ = ['ACTIVATIONS', 'get_activation', 'activation_names', 'canonical_name']


def _relu(channels):
    return nn.Activation('relu')


def _prelu(channels):
    return nn.PReLU()


def _elu(channels):
    return nn.ELU()


def _selu(channels):
    return nn.SELU()


def _gelu(channels):
    return nn.GELU()


def _swish(channels):
    return nn.Swish()


ACTIVATIONS = Registry('act type')
_UNIT_OPTIONS = ('norm_layer', 'norm_kwargs')
for _name, _builder in (('relu', _relu), ('prelu', _prelu), ('elu', _elu), ('selu', _selu),
                        ('gelu', _gelu), ('swish', _swish)):
    ACTIVATIONS.register(_name, _builder, options=())
ACTIVATIONS.register('xunit', XUnit, options=('kernel_size',) + _UNIT_OPTIONS)
ACTIVATIONS.register('chaatac', ChaATAC, options=('r', 'use_relu', 'use_global') + _UNIT_OPTIONS,
                     aliases=('atac',))


def activation_names():
    """Accepted activation names (aliases included), sorted."""
    return ACTIVATIONS.names()


def canonical_name(name):
    """Map a case-insensitive name or alias to its registry key.

    Raises
    ------
    ValueError
        If ``name`` is not a known activation; the message lists the valid names.
    """
    return ACTIVATIONS.canonical(name)


def get_activation(name, channels, **kwargs):
    """Build the activation ``name`` for a feature map with ``channels`` channels.

    Parameters
    ----------
    name : str
        Case-insensitive: one of :func:`activation_names` (``ChaATAC``/``atac`` is ATAC).
    channels : int
        Channels of the tensor the unit acts on.
    **kwargs
        Unit options (``r``, ``use_relu``, ``use_global``, ``kernel_size``, ``norm_layer``,
        ``norm_kwargs``). Options a unit has no use for are ignored, so a host can pass
        one set of options to every place; an option no unit knows is an error.

    Returns
    -------
    mxnet.gluon.HybridBlock
    """
    return ACTIVATIONS.build(name, channels, **kwargs)
