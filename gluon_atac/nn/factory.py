"""One registry for every activation and attentional activation, chosen by name."""
from mxnet.gluon import nn

from .atac import ChaATAC
from .activations import XUnit

__all__ = ['get_activation', 'activation_names', 'canonical_name']


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


# name -> (constructor taking `channels` first, keyword options it accepts)
_UNIT_OPTIONS = ('norm_layer', 'norm_kwargs')
_REGISTRY = {
    'relu': (_relu, ()),
    'prelu': (_prelu, ()),
    'elu': (_elu, ()),
    'selu': (_selu, ()),
    'gelu': (_gelu, ()),
    'swish': (_swish, ()),
    'xunit': (XUnit, ('kernel_size',) + _UNIT_OPTIONS),
    'chaatac': (ChaATAC, ('r', 'use_relu', 'use_global') + _UNIT_OPTIONS),
}
_ALIASES = {'atac': 'chaatac'}
_ALL_OPTIONS = {opt for _, opts in _REGISTRY.values() for opt in opts}


def activation_names():
    """Sorted list of accepted activation names (aliases included)."""
    return sorted(set(_REGISTRY) | set(_ALIASES))


def canonical_name(name):
    """Map a case-insensitive name or alias to its registry key.

    Raises
    ------
    ValueError
        If ``name`` is not a known activation; the message lists the valid names.
    """
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError('unknown act type %r; valid names: %s'
                         % (name, ', '.join(activation_names())))
    return key


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
    builder, accepted = _REGISTRY[canonical_name(name)]
    unknown = set(kwargs) - _ALL_OPTIONS
    if unknown:
        raise TypeError('unknown activation option(s) %s; known: %s'
                        % (', '.join(sorted(unknown)), ', '.join(sorted(_ALL_OPTIONS))))
    return builder(channels, **{k: v for k, v in kwargs.items() if k in accepted})
