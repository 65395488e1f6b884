"""Normalization layers the hosts can be built with instead of BatchNorm."""
import numpy as np
from mxnet import gluon
from mxnet.gluon import nn
from mxnet.gluon.contrib import nn as contrib_nn

from ..errors import UsageError
from ..registry import Registry

__all__ = ['GroupNorm', 'group_norm', 'NORMS', 'get_norm']


class GroupNorm(gluon.HybridBlock):
    """Group normalization with per-channel affine parameters, computed in float32.

    GluonCV's ``GroupNorm`` (which the original's ``--use-gn`` built): statistics over
    each group of channels and its pixels, then ``gamma`` and ``beta`` of shape ``(C,)``.
    MXNet 1.9's ``gluon.nn.GroupNorm`` has one gamma/beta per group instead, and
    GluonCV's own layer calls ``Reshape`` with arguments MXNet 1.9 rejects.

    Like BatchNorm, :meth:`cast` to float16 keeps the parameters in float32; float16
    inputs are normalized in float32 and the result is cast back, so the statistics of
    large groups do not lose precision.

    Parameters
    ----------
    num_groups : int, default 32
        Must divide the channels (else :class:`~gluon_atac.errors.UsageError`).
    in_channels : int, default 0
        Channels, or 0 to infer them from the first input.
    epsilon : float, default 1e-5
        Added to the variance.
    gamma_initializer, beta_initializer : str or Initializer
    """

    def __init__(self, num_groups=32, in_channels=0, epsilon=1e-5, gamma_initializer='ones',
                 beta_initializer='zeros', **kwargs):
        super().__init__(**kwargs)
        self._num_groups = num_groups
        if in_channels:
            self._check_channels(in_channels)
        self._epsilon = epsilon
        # The dtype of inputs and outputs; the parameters are always float32.
        self._io_dtype = 'float32'
        with self.name_scope():
            self.gamma = self.params.get('gamma', shape=(in_channels,),
                                         init=gamma_initializer, allow_deferred_init=True)
            self.beta = self.params.get('beta', shape=(in_channels,),
                                        init=beta_initializer, allow_deferred_init=True)

    def cast(self, dtype):
        """Compute for ``dtype`` inputs; the parameters stay float32 (see the class)."""
        self._io_dtype = np.dtype(dtype).name
        super().cast('float32')

    def _check_channels(self, channels):
        if channels % self._num_groups:
            raise UsageError('GroupNorm with %d groups cannot normalize %d channels (the '
                             'groups must divide the channels)' % (self._num_groups, channels))

    def infer_shape(self, x, *args):
        """Per-channel parameters from the input's channel axis."""
        self._check_channels(x.shape[1])
        self.gamma.shape = self.beta.shape = (x.shape[1],)

    def hybrid_forward(self, F, x, gamma, beta):
        if self._io_dtype != 'float32':
            x = F.cast(x, dtype='float32')
        # (N, C, ...) -> (N, groups, C/groups * pixels): statistics over the last axis.
        grouped = F.reshape(x, shape=(0, self._num_groups, -1))
        centered = F.broadcast_sub(grouped, F.mean(grouped, axis=2, keepdims=True))
        variance = F.mean(F.square(centered), axis=2, keepdims=True)
        normed = F.broadcast_div(centered, F.sqrt(variance + self._epsilon))
        # (N, C, pixels) so gamma/beta broadcast per channel, whatever the spatial rank.
        normed = F.reshape(F.reshape_like(normed, x), shape=(0, 0, -1))
        out = F.broadcast_add(F.broadcast_mul(normed, F.reshape(gamma, shape=(1, -1, 1))),
                              F.reshape(beta, shape=(1, -1, 1)))
        out = F.reshape_like(out, x)
        if self._io_dtype != 'float32':
            out = F.cast(out, dtype=self._io_dtype)
        return out

    def __repr__(self):
        return '%s(num_groups=%d, in_channels=%d, eps=%g)' % (
            self.__class__.__name__, self._num_groups, self.gamma.shape[0], self._epsilon)


def group_norm(in_channels=0, **kwargs):
    """:class:`GroupNorm` with 32 groups (``train_imagenet.py --use-gn``), built like a
    host's norm layer."""
    return GroupNorm(num_groups=32, in_channels=in_channels, **kwargs)


NORMS = Registry('norm layer', separator_insensitive=True)
NORMS.register('batchnorm', nn.BatchNorm, aliases=('bn',))
NORMS.register('syncbatchnorm', contrib_nn.SyncBatchNorm, aliases=('syncbn',))
NORMS.register('groupnorm', group_norm, aliases=('gn',))


def get_norm(norm_layer):
    """The norm layer class of a name (``'batchnorm'``, ``'syncbatchnorm'``, ``'groupnorm'``,
    case-insensitive), or ``norm_layer`` itself when it is already a class or builder.

    Hosts accept either, so a model card (JSON) can name its norm layer.
    """
    return NORMS.resolve(norm_layer)
