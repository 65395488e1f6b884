"""GroupNorm of ``--use-gn``: per-channel affine parameters, float32 under float16."""
import mxnet as mx
import numpy as np
import pytest

from gluon_atac.errors import UsageError
from gluon_atac.model_zoo import get_model
from gluon_atac.nn import group_norm


def reference(x, gamma, beta, groups, eps=1e-5):
    n, c = x.shape[:2]
    grouped = x.astype(np.float64).reshape(n, groups, -1)
    normed = (grouped - grouped.mean(axis=2, keepdims=True)) / np.sqrt(
        grouped.var(axis=2, keepdims=True) + eps)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return normed.reshape(x.shape) * gamma.reshape(shape) + beta.reshape(shape)


@pytest.mark.parametrize('hybrid', [False, True])
def test_group_norm_has_per_channel_gamma_and_beta(hybrid):
    rng = np.random.RandomState(0)
    norm = group_norm()
    norm.initialize()
    if hybrid:
        norm.hybridize()
    x = rng.normal(3, 2, size=(2, 64, 3, 5)).astype(np.float32)
    norm(mx.nd.array(x))
    assert norm.gamma.shape == norm.beta.shape == (64,)
    gamma, beta = rng.uniform(0.5, 2, 64), rng.normal(size=64)
    norm.gamma.set_data(mx.nd.array(gamma))
    norm.beta.set_data(mx.nd.array(beta))
    y = norm(mx.nd.array(x))
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y.asnumpy(), reference(x, gamma, beta, 32), rtol=1e-5,
                               atol=1e-5)


def test_group_norm_cast_to_float16_keeps_float32_parameters_and_statistics():
    norm = group_norm(in_channels=64)
    norm.initialize()
    norm.cast('float16')
    assert {np.dtype(p.dtype) for p in norm.collect_params().values()} == {
        np.dtype('float32')}
    # A large offset: float16 sums would lose the spread; float32 statistics keep it.
    x = (1000 + np.random.RandomState(1).uniform(0, 4, (2, 64, 4, 4))).astype(np.float16)
    y = norm(mx.nd.array(x, dtype='float16'))
    assert y.dtype == np.float16
    expected = reference(x.astype(np.float32), np.ones(64), np.zeros(64), 32)
    np.testing.assert_allclose(y.asnumpy().astype(np.float64), expected, atol=2e-3)


def test_hosts_build_with_group_norm_everywhere():
    net = get_model('resnet18_v1b', classes=4, norm_layer=group_norm, input_size=32)
    net.initialize()
    net.hybridize()
    assert net(mx.nd.zeros((1, 3, 32, 32))).shape == (1, 4)
    params = net._collect_params_with_prefix()
    assert not any('running' in name for name in params)
    assert params['layer1.0.bn1.gamma'].shape == (64,)


@pytest.mark.parametrize('declared', [True, False])
def test_channels_the_groups_do_not_divide_are_one_line(declared):
    message = 'GroupNorm with 32 groups cannot normalize 48 channels'
    # Gluon re-raises an error of deferred initialization as a ValueError with its message.
    with pytest.raises(UsageError if declared else ValueError, match=message):
        norm = group_norm(in_channels=48 if declared else 0)
        norm.initialize()
        norm(mx.nd.ones((1, 48, 2, 2)))


def test_group_norm_normalizes_each_group_of_channels():
    norm = group_norm(in_channels=64)
    norm.initialize()
    x = mx.nd.arange(2 * 64 * 2 * 2).reshape((2, 64, 2, 2))
    y = norm(x).asnumpy()
    assert norm._num_groups == 32
    groups = y.reshape(2, 32, -1)
    np.testing.assert_allclose(groups.mean(axis=2), 0, atol=1e-5)
    # Each group holds 2 channels x 4 pixels of consecutive values 0..7: variance 5.25.
    expected = (np.arange(8) - 3.5) / np.sqrt(5.25 + 1e-5)
    np.testing.assert_allclose(groups[0, 0], expected, rtol=1e-5)
