"""The two self-attention baselines against plain numpy versions of their papers' formulas.

Both blocks run in float64 here, so values and gradients are held to the numpy versions
(float64 too) at rounding level; gradients of the numpy versions are central finite
differences.
"""
import mxnet as mx
import numpy as np
import pytest

from gluon_atac.nn.self_attention import (AugmentedConv2D, LocalSelfAttention2D,
                                          attention_depths, get_spatial_op, spatial_op_names)


def conv2d(x, w, stride=1, pad=0):
    """Cross-correlation of ``x`` (C, H, W) with ``w`` (O, C, k, k), zero padding."""
    k = w.shape[-1]
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out_h = (x.shape[1] - k) // stride + 1
    out_w = (x.shape[2] - k) // stride + 1
    out = np.zeros((w.shape[0], out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, i, j] = np.tensordot(w, patch, axes=([1, 2, 3], [0, 1, 2]))
    return out


def avg_pool(x, s):
    c, h, w = x.shape
    return x[:, :h // s * s, :w // s * s].reshape(c, h // s, s, w // s, s).mean(axis=(2, 4))


def softmax(z):
    z = z - z.max()
    return np.exp(z) / np.exp(z).sum()


def augmented_numpy(x, p, dk, dv, heads, stride):
    """Bello et al.'s eqs: Concat[Conv(X), MHA(X)] with 2-D relative logits, one image."""
    conv = conv2d(x, p['conv'], stride, 1)
    if stride > 1:
        x = avg_pool(x, stride)
    _, h, w = x.shape
    qkv = np.tensordot(p['qkv'][:, :, 0, 0], x, axes=1)
    q, k, v = qkv[:dk], qkv[dk:2 * dk], qkv[2 * dk:]
    dkh, dvh = dk // heads, dv // heads
    out = np.zeros((dv, h, w))
    for n in range(heads):
        qn, kn = q[n * dkh:(n + 1) * dkh], k[n * dkh:(n + 1) * dkh]
        vn = v[n * dvh:(n + 1) * dvh]
        for iy in range(h):
            for ix in range(w):
                logits = np.zeros((h, w))
                for jy in range(h):
                    for jx in range(w):
                        key = (kn[:, jy, jx] + p['rel_width'][jx - ix + w - 1]
                               + p['rel_height'][jy - iy + h - 1])
                        logits[jy, jx] = qn[:, iy, ix] @ key / np.sqrt(dkh)
                weights = softmax(logits.ravel()).reshape(h, w)
                out[n * dvh:(n + 1) * dvh, iy, ix] = (vn * weights).sum(axis=(1, 2))
    mixed = np.tensordot(p['proj'], out, axes=1)
    return np.concatenate([conv, mixed])


def local_numpy(x, p, heads, kernel, stride):
    """Ramachandran et al.'s eq. 3 per head, neighbours restricted to the map, one image."""
    q, k, v = (np.tensordot(p[name][:, :, 0, 0], x, axes=1) for name in ('query', 'key', 'value'))
    channels, h, w = q.shape
    dh, r = channels // heads, kernel // 2
    out = np.zeros((channels, h, w))
    for n in range(heads):
        sl = slice(n * dh, (n + 1) * dh)
        for i in range(h):
            for j in range(w):
                logits, values = [], []
                for a in range(i - r, i + r + 1):
                    for b in range(j - r, j + r + 1):
                        if 0 <= a < h and 0 <= b < w:
                            rel = np.concatenate([p['rel_row'][n, a - i + r],
                                                  p['rel_col'][n, b - j + r]])
                            logits.append(q[sl, i, j] @ (k[sl, a, b] + rel))
                            values.append(v[sl, a, b])
                out[sl, i, j] = softmax(np.array(logits)) @ np.array(values)
    return avg_pool(out, stride) if stride > 1 else out


def _named(block):
    """Structural parameter names without ``.weight``: conv, qkv, proj, rel_width ..."""
    return {name.replace('.weight', ''): p for name, p in
            block._collect_params_with_prefix().items()}


def _run_mxnet(block, x, cotangent):
    """Output and gradients (input and every parameter) of ``sum(out * cotangent)``."""
    data = mx.nd.array(x, dtype='float64')
    data.attach_grad()
    with mx.autograd.record():
        out = block(data)
        loss = (out * mx.nd.array(cotangent, dtype='float64')).sum()
    loss.backward()
    grads = {name: p.grad().asnumpy() for name, p in _named(block).items()}
    return out.asnumpy(), data.grad.asnumpy(), grads


def _check_gradients(numpy_fn, x, params, cotangent, got_x, got_params, rng, picks=5):
    """Central differences of the numpy version at a few random coordinates of each array."""
    def loss(x_, p_):
        return sum((numpy_fn(x_[b], p_) * cotangent[b]).sum() for b in range(len(x_)))
    eps = 1e-6
    for name, array in [('x', x)] + sorted(params.items()):
        got = got_x if name == 'x' else got_params[name]
        for flat in rng.choice(array.size, size=min(picks, array.size), replace=False):
            index = np.unravel_index(flat, array.shape)
            moved = [array.copy(), array.copy()]
            moved[0][index] += eps
            moved[1][index] -= eps
            values = []
            for m in moved:
                if name == 'x':
                    values.append(loss(m, params))
                else:
                    values.append(loss(x, dict(params, **{name: m})))
            expected = (values[0] - values[1]) / (2 * eps)
            assert got[index] == pytest.approx(expected, rel=1e-5, abs=1e-7), (name, index)


@pytest.mark.parametrize('stride', [1, 2])
def test_augmented_conv_matches_the_papers_formula(stride):
    rng = np.random.RandomState(0)
    channels, in_channels, heads, side = 20, 6, 2, 3
    block = AugmentedConv2D(channels, 3, stride, in_channels, spatial=side, key_ratio=0.2,
                            value_ratio=0.2, heads=heads)
    block.initialize(mx.init.Normal(0.5))
    block.cast('float64')
    x = rng.standard_normal((2, in_channels, side * stride, side * stride))
    out, grad_x, grads = _run_mxnet(block, x, rng.standard_normal((2, channels, side, side)))
    params = {name: p.data().asnumpy() for name, p in _named(block).items()}
    assert set(params) == {'conv', 'qkv', 'proj', 'rel_height', 'rel_width'}
    assert (block.dk, block.dv) == (4, 4)
    numpy_fn = lambda x1, p: augmented_numpy(x1, p, block.dk, block.dv, heads, stride)
    expected = np.stack([numpy_fn(x[b], params) for b in range(2)])
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    # The relative logits matter: without them the output moves.
    flat = dict(params, rel_height=0 * params['rel_height'], rel_width=0 * params['rel_width'])
    assert np.abs(numpy_fn(x[0], flat) - expected[0]).max() > 1e-3
    cotangent = rng.standard_normal(out.shape)
    out, grad_x, grads = _run_mxnet(block, x, cotangent)
    _check_gradients(numpy_fn, x, params, cotangent, grad_x, grads, rng)


@pytest.mark.parametrize('stride', [1, 2])
def test_local_attention_matches_the_papers_formula(stride):
    rng = np.random.RandomState(1)
    channels, in_channels, heads, kernel, side = 8, 5, 2, 3, 4
    block = LocalSelfAttention2D(channels, in_channels, spatial=side // stride,
                                 kernel_size=kernel, heads=heads, strides=stride)
    block.initialize(mx.init.Normal(0.5))
    block.cast('float64')
    x = rng.standard_normal((2, in_channels, side, side))
    cotangent = rng.standard_normal((2, channels, side // stride, side // stride))
    out, grad_x, grads = _run_mxnet(block, x, cotangent)
    params = {name: p.data().asnumpy() for name, p in _named(block).items()}
    assert set(params) == {'query', 'key', 'value', 'rel_row', 'rel_col'}
    numpy_fn = lambda x1, p: local_numpy(x1, p, heads, kernel, stride)
    expected = np.stack([numpy_fn(x[b], params) for b in range(2)])
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
    flat = dict(params, rel_row=0 * params['rel_row'], rel_col=0 * params['rel_col'])
    assert np.abs(numpy_fn(x[0], flat) - expected[0]).max() > 1e-3
    _check_gradients(numpy_fn, x, params, cotangent, grad_x, grads, rng)


def test_hybridized_blocks_agree_with_imperative_ones():
    x = mx.nd.random.normal(shape=(2, 8, 6, 6))
    for block in (AugmentedConv2D(16, 3, 2, 8, spatial=3, heads=2),
                  LocalSelfAttention2D(16, 8, spatial=3, kernel_size=3, heads=2, strides=2)):
        block.initialize()
        expected = block(x).asnumpy()
        block.hybridize()
        np.testing.assert_allclose(block(x).asnumpy(), expected, rtol=1e-5, atol=1e-6)


def test_depths_round_to_whole_heads_and_names_resolve():
    assert attention_depths(128, 0.2, 0.1, 8) == (24, 16)
    assert attention_depths(512, 0.2, 0.1, 8) == (104, 48)
    with pytest.raises(ValueError, match='value ratio'):
        attention_depths(64, 0.2, 1.5, 8)
    assert {'aa', 'sasa'} <= set(spatial_op_names())
    assert isinstance(get_spatial_op('Attention-Augmented', 64, 64, spatial=7),
                      AugmentedConv2D)
    local = get_spatial_op('sasa', 64, 64, spatial=7, key_ratio=0.2)  # AA's option ignored
    assert isinstance(local, LocalSelfAttention2D) and local.kernel_size == 7
    with pytest.raises(ValueError, match='divisible'):
        LocalSelfAttention2D(24, 8, spatial=4, heads=8)
