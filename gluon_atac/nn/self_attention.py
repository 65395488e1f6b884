"""Self-attention in place of a spatial convolution: the paper's two remaining baselines.

* :class:`AugmentedConv2D` -- attention-augmented convolution (Bello, Zoph, Vaswani,
  Shlens, Le, "Attention Augmented Convolutional Networks", ICCV 2019): the output
  channels are split between a k x k convolution and multi-head self-attention over all
  positions with 2-D relative position logits.
* :class:`LocalSelfAttention2D` -- stand-alone local self-attention (Ramachandran, Parmar,
  Vaswani, Bello, Levskaya, Shlens, "Stand-Alone Self-Attention in Vision Models",
  NeurIPS 2019): each position attends to its k x k neighbourhood, with relative row and
  column embeddings.

Both replace the 3x3 convolution of a bottleneck, so they are not gates of a residual
branch and are not in :data:`gluon_atac.nn.attention.ATTENTION`; hosts choose them by
name from :data:`SPATIAL_OPS`.

Every product of the attention (QK^T, attention x V, the relative logits) is a
``batch_dot``, so :func:`gluon_atac.utils.counting.count_flops` counts its multiply-adds
from the graph, and every operator has an ONNX translation in MXNet's converter.
"""
from mxnet.gluon import nn

from ..registry import Registry

__all__ = ['SPATIAL_OPS', 'AugmentedConv2D', 'LocalSelfAttention2D', 'attention_depths',
           'get_spatial_op', 'spatial_op_names']

# Added to the logit of a neighbour outside the map: exp(-1e4) is 0 in float32, so
# border positions average over the neighbours that exist (no zero keys take weight).
_MASKED = -1e4


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError('%s must be a positive integer, got %r' % (name, value))
    return value


def attention_depths(channels, key_ratio, value_ratio, heads):
    """Key and value depths ``(dk, dv)`` of an augmented convolution.

    ``dk = κ F_out`` and ``dv = υ F_out`` rounded to the nearest multiple of ``heads``
    (at least one channel per head), since each head takes an equal slice.

    Parameters
    ----------
    channels : int
        Output channels ``F_out`` of the convolution being augmented.
    key_ratio, value_ratio : float
        κ and υ, in (0, 1).
    heads : int
    """
    def depth(ratio, what):
        if not 0 < ratio < 1:
            raise ValueError('%s ratio must be in (0, 1), got %r' % (what, ratio))
        return heads * max(1, int(round(ratio * channels / heads)))
    dk, dv = depth(key_ratio, 'key'), depth(value_ratio, 'value')
    if dv >= channels:
        raise ValueError('value depth %d leaves no convolution channels of %d' % (dv, channels))
    return dk, dv


def _offset_table(F, table, side):
    """``(side, side, d)`` table ``T[i, j] = table[j - i + side - 1]`` of a ``(2 side - 1, d)``
    relative embedding: row ``i`` is a slice, so no index array enters the graph."""
    rows = [F.slice_axis(table, axis=0, begin=side - 1 - i, end=2 * side - 1 - i)
            for i in range(side)]
    return F.stack(*rows, axis=0)


class AugmentedConv2D(nn.HybridBlock):
    """Attention-augmented convolution (Bello et al., ICCV 2019).

    ``AAConv(X) = Concat[Conv(X), MHA(X)]``: a ``kernel_size`` convolution gives
    ``channels - dv`` channels; multi-head attention over all ``H x W`` positions gives
    ``dv``. With queries ``Q = X W_q``, keys ``K = X W_k``, values ``V = X W_v`` (one 1x1
    convolution, ``2 dk + dv`` channels, split into ``heads`` equal slices per head),
    head ``h`` computes

    ``O_h = softmax((Q_h K_h^T + S_H + S_W) / sqrt(dkh)) V_h``,
    ``S_W[i, j] = q_i . r^W[j_x - i_x]``, ``S_H[i, j] = q_i . r^H[j_y - i_y]``,

    with ``dkh = dk / heads`` and learned relative embeddings ``r^W`` (``2W - 1`` rows) and
    ``r^H`` (``2H - 1`` rows) of width ``dkh``, shared by the heads. The heads are
    concatenated and mixed by ``W_O``, a 1x1 convolution ``dv -> dv``. Flattening is
    row-major (position ``i = i_y W + i_x``).

    A strided convolution keeps its stride; the attention then runs on the input average
    pooled by the stride, so both parts have the output's size.

    Parameters
    ----------
    channels : int
        Output channels ``F_out`` (convolution and attention together).
    kernel_size : int, default 3
    strides : int, default 1
    in_channels : int
    spatial : int
        Side of the (square) output map. The relative tables have ``2 spatial - 1`` rows,
        so the block runs on maps of exactly this size, the training resolution's.
    key_ratio : float, default 0.2
        κ = dk / F_out (Bello et al.'s ResNets: κ = 2υ = 0.2).
    value_ratio : float, default 0.1
        υ = dv / F_out.
    heads : int, default 8
    """

    def __init__(self, channels, kernel_size=3, strides=1, in_channels=0, spatial=None,
                 key_ratio=0.2, value_ratio=0.1, heads=8, **kwargs):
        super(AugmentedConv2D, self).__init__(**kwargs)
        self.heads = _positive_int('heads', heads)
        self.spatial = _positive_int('spatial', spatial)
        self.strides = strides
        self.dk, self.dv = attention_depths(channels, key_ratio, value_ratio, heads)
        self.dkh, self.dvh = self.dk // heads, self.dv // heads
        self.channels = channels
        with self.name_scope():
            self.conv = nn.Conv2D(channels - self.dv, kernel_size, strides,
                                  kernel_size // 2, use_bias=False, in_channels=in_channels)
            self.qkv = nn.Conv2D(2 * self.dk + self.dv, 1, use_bias=False,
                                 in_channels=in_channels)
            # W_O on rows of positions: as a 1x1 convolution its oneDNN-blocked input
            # gradient would reach the transposes before it, which static_alloc fails on.
            self.proj = nn.Dense(self.dv, use_bias=False, flatten=False, in_units=self.dv)
            self.rel_height = self.params.get('rel_height', shape=(2 * spatial - 1, self.dkh),
                                              init='normal')
            self.rel_width = self.params.get('rel_width', shape=(2 * spatial - 1, self.dkh),
                                             init='normal')

    def _relative(self, F, q, table, along_width):
        """Relative logits of ``q`` (``B Nh, H, W, dkh``) along one axis, shaped to add
        to the ``(B Nh, H, W, H, W)`` logits."""
        side = self.spatial
        offsets = _offset_table(F, table, side)  # (side_i, side_j, dkh)
        # Batch the products over the query coordinate on the chosen axis.
        q = F.transpose(q, axes=(2, 0, 1, 3) if along_width else (1, 0, 2, 3))
        q = F.reshape(q, shape=(side, -1, self.dkh))
        logits = F.batch_dot(q, offsets, transpose_b=True)  # (side_i, B Nh side, side_j)
        logits = F.reshape(logits, shape=(side, -1, side, side))
        if along_width:  # (i_x, B Nh, i_y, j_x) -> (B Nh, i_y, i_x, 1, j_x)
            return F.expand_dims(F.transpose(logits, axes=(1, 2, 0, 3)), axis=3)
        # (i_y, B Nh, i_x, j_y) -> (B Nh, i_y, i_x, j_y, 1)
        return F.expand_dims(F.transpose(logits, axes=(1, 0, 2, 3)), axis=4)

    def hybrid_forward(self, F, x, rel_height, rel_width):
        side, heads, dkh, dvh = self.spatial, self.heads, self.dkh, self.dvh
        conv = self.conv(x)
        if self.strides != 1:
            x = F.Pooling(x, kernel=(self.strides, self.strides),
                          stride=(self.strides, self.strides), pool_type='avg')
        # Flattened before slicing: a channel slice of a oneDNN-blocked convolution output
        # fails ("could not construct a sub-memory") when dk is not a block multiple.
        qkv = F.reshape(self.qkv(x), shape=(-1, 2 * self.dk + self.dv, side * side))
        q = F.slice_axis(qkv, axis=1, begin=0, end=self.dk) * (dkh ** -0.5)
        k = F.slice_axis(qkv, axis=1, begin=self.dk, end=2 * self.dk)
        v = F.slice_axis(qkv, axis=1, begin=2 * self.dk, end=None)
        # (B, heads * d, H, W) -> (B heads, H W, d): one row per position.
        q = F.transpose(F.reshape(q, shape=(-1, dkh, side * side)), axes=(0, 2, 1))
        k = F.transpose(F.reshape(k, shape=(-1, dkh, side * side)), axes=(0, 2, 1))
        v = F.transpose(F.reshape(v, shape=(-1, dvh, side * side)), axes=(0, 2, 1))
        logits = F.batch_dot(q, k, transpose_b=True)  # (B heads, HW, HW)
        grid = F.reshape(q, shape=(-1, side, side, dkh))
        logits = F.broadcast_add(
            F.broadcast_add(F.reshape(logits, shape=(-1, side, side, side, side)),
                            self._relative(F, grid, rel_width, True)),
            self._relative(F, grid, rel_height, False))
        weights = F.softmax(F.reshape(logits, shape=(-1, side * side, side * side)), axis=-1)
        out = F.batch_dot(weights, v)  # (B heads, HW, dvh)
        out = F.reshape(F.transpose(F.reshape(out, shape=(-1, heads, side * side, dvh)),
                                    axes=(0, 2, 1, 3)), shape=(-1, side * side, self.dv))
        mixed = F.transpose(self.proj(out), axes=(0, 2, 1))  # (B, dv, HW)
        # Joined as flat maps: oneDNN's 4-D concatenation splits its gradient into
        # sub-memories, which fail where the split is not a multiple of its channel block.
        conv = F.reshape(conv, shape=(-1, self.channels - self.dv, side * side))
        return F.reshape(F.concat(conv, mixed, dim=1), shape=(-1, self.channels, side, side))

    def __repr__(self):
        return '%s(channels=%d, dk=%d, dv=%d, heads=%d, spatial=%d, strides=%d)' % (
            self.__class__.__name__, self.channels, self.dk, self.dv, self.heads,
            self.spatial, self.strides)


class LocalSelfAttention2D(nn.HybridBlock):
    """Stand-alone local self-attention (Ramachandran et al., NeurIPS 2019).

    ``y_ij = sum_{ab in N_k(i,j)} softmax_ab(q_ij . k_ab + q_ij . r_{a-i, b-j}) v_ab``
    with ``q = W_Q x``, ``k = W_K x``, ``v = W_V x`` (1x1 convolutions ``C_in ->
    channels``, no bias), computed per head on ``channels / heads`` slices and
    concatenated. The relative embedding of offset ``(a - i, b - j)`` is, per head, the
    concatenation of a row embedding ``r^row[a - i]`` and a column embedding
    ``r^col[b - j]``, each half a head's width: head ``n``'s logit is
    ``q^n[:dh/2] . rel_row[n, a - i + k//2] + q^n[dh/2:] . rel_col[n, b - j + k//2]``.
    As in the paper no ``1 / sqrt(d)`` scale is applied. Neighbours outside the map take
    no weight (their logits are masked), so a border position averages the neighbours it
    has.

    A stride is a 2x2 average pooling after the attention (the paper's downsampling).

    Parameters
    ----------
    channels : int
        Output channels ``d_out``, divisible by ``2 * heads``.
    in_channels : int
    spatial : int
        Side of the (square) output map; the attention runs on ``spatial * strides``.
        Shapes are fixed at construction because MXNet's ONNX converter cannot reshape
        with MXNet's shape-inferring codes.
    kernel_size : int, default 7
        Spatial extent k (odd); the paper's ResNet-50 uses 7.
    heads : int, default 8
    strides : int, default 1
    """

    def __init__(self, channels, in_channels=0, spatial=None, kernel_size=7, heads=8,
                 strides=1, **kwargs):
        super(LocalSelfAttention2D, self).__init__(**kwargs)
        self.heads = _positive_int('heads', heads)
        self.kernel_size = _positive_int('kernel_size', kernel_size)
        self.side = _positive_int('spatial', spatial) * strides
        if kernel_size % 2 == 0:
            raise ValueError('kernel_size must be odd, got %d' % kernel_size)
        if channels % (2 * heads):
            raise ValueError('channels (%d) must be divisible by 2 * heads (%d)'
                             % (channels, 2 * heads))
        self.channels, self.strides, self.dh = channels, strides, channels // heads
        with self.name_scope():
            self.query = nn.Conv2D(channels, 1, use_bias=False, in_channels=in_channels)
            self.key = nn.Conv2D(channels, 1, use_bias=False, in_channels=in_channels)
            self.value = nn.Conv2D(channels, 1, use_bias=False, in_channels=in_channels)
            half = (heads, kernel_size, self.dh // 2)
            self.rel_row = self.params.get('rel_row', shape=half, init='normal')
            self.rel_col = self.params.get('rel_col', shape=half, init='normal')

    def _neighbours(self, F, x):
        """``(B, C, k*k, H, W)``: the k x k neighbourhood of every position, zero outside,
        offsets row-major (index ``(a - i + k//2) k + (b - j + k//2)``)."""
        k, pad, side = self.kernel_size, self.kernel_size // 2, self.side
        padded = F.pad(x, mode='constant', constant_value=0,
                       pad_width=(0, 0, 0, 0, pad, pad, pad, pad))
        return F.stack(*[F.slice(padded, begin=(None, None, dy, dx),
                                 end=(None, None, dy + side, dx + side))
                         for dy in range(k) for dx in range(k)], axis=2)

    def _per_position(self, F, unfolded):
        """``(B, heads dh, k*k, H, W)`` -> ``(B heads H W, dh, k*k)``."""
        area = self.kernel_size ** 2
        unfolded = F.reshape(unfolded, shape=(-1, self.heads, self.dh, area,
                                              self.side * self.side))
        return F.reshape(F.transpose(unfolded, axes=(0, 1, 4, 2, 3)),
                         shape=(-1, self.dh, area))

    def hybrid_forward(self, F, x, rel_row, rel_col):
        heads, dh, area, hw = self.heads, self.dh, self.kernel_size ** 2, self.side ** 2
        keys = self._per_position(F, self._neighbours(F, self.key(x)))
        values = self._per_position(F, self._neighbours(F, self.value(x)))
        # Every position's query per head: (B, heads, HW, dh).
        rows = F.transpose(F.reshape(self.query(x), shape=(-1, heads, dh, hw)),
                           axes=(0, 1, 3, 2))
        logits = F.batch_dot(F.reshape(rows, shape=(-1, 1, dh)), keys)  # (B heads HW, 1, k²)
        # Relative logits, batched over heads: each half of a query against its k offsets.
        by_head = F.reshape(F.transpose(rows, axes=(1, 0, 2, 3)), shape=(heads, -1, dh))
        row = F.batch_dot(F.slice_axis(by_head, axis=2, begin=0, end=dh // 2), rel_row,
                          transpose_b=True)  # (heads, B HW, k)
        col = F.batch_dot(F.slice_axis(by_head, axis=2, begin=dh // 2, end=None), rel_col,
                          transpose_b=True)
        relative = F.broadcast_add(F.expand_dims(row, axis=3), F.expand_dims(col, axis=2))
        relative = F.transpose(F.reshape(relative, shape=(heads, -1, hw, area)),
                               axes=(1, 0, 2, 3))  # (B, heads, HW, k²)
        # Which neighbours lie inside the map, from a zero-padded map of ones.
        # (A channel sum, not a channel slice: slices of oneDNN-blocked inputs fail.)
        inside = self._neighbours(F, F.ones_like(F.sum(x, axis=1, keepdims=True)))
        inside = F.transpose(F.reshape(inside, shape=(-1, 1, area, hw)), axes=(0, 1, 3, 2))
        logits = F.reshape(logits, shape=(-1, heads, hw, area)) + relative
        weights = F.softmax(F.broadcast_add(logits, (1 - inside) * _MASKED), axis=-1)
        out = F.batch_dot(F.reshape(weights, shape=(-1, 1, area)), values,
                          transpose_b=True)  # (B heads HW, 1, dh)
        out = F.transpose(F.reshape(out, shape=(-1, heads, hw, dh)), axes=(0, 1, 3, 2))
        # A one-input concatenation hands the transpose a plain-layout gradient: with
        # static_alloc, the oneDNN-blocked gradient of the next layer makes it fail.
        out = F.concat(F.reshape(out, shape=(-1, self.channels, hw)), dim=1)
        out = F.reshape(out, shape=(-1, self.channels, self.side, self.side))
        if self.strides != 1:
            out = F.Pooling(out, kernel=(self.strides, self.strides),
                            stride=(self.strides, self.strides), pool_type='avg')
        return out

    def __repr__(self):
        return '%s(channels=%d, kernel_size=%d, heads=%d, side=%d, strides=%d)' % (
            self.__class__.__name__, self.channels, self.kernel_size, self.heads, self.side,
            self.strides)


def _augmented(channels, in_channels, strides=1, spatial=None, key_ratio=0.2,
               value_ratio=0.1, heads=8):
    return AugmentedConv2D(channels, 3, strides, in_channels, spatial, key_ratio,
                           value_ratio, heads)


def _local(channels, in_channels, strides=1, spatial=None, kernel_size=7, heads=8):
    return LocalSelfAttention2D(channels, in_channels, spatial, kernel_size, heads, strides)


SPATIAL_OPS = Registry('spatial op', separator_insensitive=True)
SPATIAL_OPS.register('aa', _augmented, options=('strides', 'spatial', 'key_ratio',
                                                'value_ratio', 'heads'),
                     aliases=('augmented', 'attention_augmented'))
SPATIAL_OPS.register('sasa', _local, options=('strides', 'spatial', 'kernel_size', 'heads'),
                     aliases=('local', 'stand_alone'))


def spatial_op_names():
    """Accepted names of :func:`get_spatial_op` (aliases included), sorted."""
    return SPATIAL_OPS.names()


def get_spatial_op(name, channels, in_channels, **kwargs):
    """Build the attention layer ``name`` in place of a ``channels``-channel 3x3 conv.

    Parameters
    ----------
    name : str
        ``'aa'`` (:class:`AugmentedConv2D`) or ``'sasa'`` (:class:`LocalSelfAttention2D`),
        case-insensitive, or an alias from :func:`spatial_op_names`.
    channels, in_channels : int
    **kwargs
        ``strides``, ``spatial``, ``key_ratio``, ``value_ratio``, ``heads``,
        ``kernel_size``; options the chosen layer has no use for are ignored.

    Returns
    -------
    mxnet.gluon.HybridBlock
    """
    return SPATIAL_OPS.build(name, channels, in_channels, **kwargs)
