"""ChaATAC: the gate formula, the original's structure, and bad reduction ratios."""
import mxnet as mx
import numpy as np
import pytest

from gluon_atac import ChaATAC


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _bn(z, p, eps=1e-5):
    g, b, m, v = (p[k].reshape(1, -1, 1, 1) for k in ('gamma', 'beta', 'running_mean',
                                                      'running_var'))
    return (z - m) / np.sqrt(v + eps) * g + b


def _conv1x1(z, w):
    return np.einsum('oc,nchw->nohw', w[:, :, 0, 0], z)


def _randomize(block, seed=0):
    rng = np.random.RandomState(seed)
    for name, p in block.collect_params().items():
        low = 0.5 if name.endswith('var') else -1.0
        p.set_data(mx.nd.array(rng.uniform(low, 1.0, p.shape)))


def _params(block):
    return {k: v.data().asnumpy() for k, v in block._collect_params_with_prefix().items()}


def _numpy_atac(x, p, use_relu=True, use_global=False):
    """The paper's gate x * sigmoid(L(x)) in numpy, from the structural parameter names."""
    offset = 1 if use_global else 0
    z = x.mean(axis=(2, 3), keepdims=True) if use_global else x
    bn = lambda z, i: _bn(z, {k[len('module.%d.' % i):]: v for k, v in p.items()
                              if k.startswith('module.%d.' % i)})
    z = bn(_conv1x1(z, p['module.%d.weight' % offset]), offset + 1)
    if use_relu:
        z = np.maximum(z, 0)
    second = offset + (3 if use_relu else 2)
    z = bn(_conv1x1(z, p['module.%d.weight' % second]), second + 1)
    return x * _sigmoid(z)


@pytest.mark.parametrize('use_relu', [True, False])
@pytest.mark.parametrize('use_global', [False, True])
def test_gate_matches_numpy_formula(use_relu, use_global):
    unit = ChaATAC(8, r=2, use_relu=use_relu, use_global=use_global)
    unit.initialize()
    _randomize(unit)
    x = np.random.RandomState(1).randn(2, 8, 5, 4).astype('float32')
    expected = _numpy_atac(x, _params(unit), use_relu, use_global)
    got = unit(mx.nd.array(x)).asnumpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    unit.hybridize()
    np.testing.assert_allclose(unit(mx.nd.array(x)).asnumpy(), expected, rtol=1e-5,
                               atol=1e-5)


def test_structural_names_follow_the_original():
    names = lambda **kw: sorted(ChaATAC(16, **kw)._collect_params_with_prefix())
    assert names() == sorted(
        ['module.0.weight', 'module.3.weight'] +
        ['module.%d.%s' % (i, k) for i in (1, 4)
         for k in ('gamma', 'beta', 'running_mean', 'running_var')])
    assert 'module.1.weight' in names(use_global=True)
    assert 'module.2.weight' in names(use_relu=False)


def test_unit_cost_is_2C2_over_r_weights():
    unit = ChaATAC(64, r=4)
    weights = sum(int(np.prod(p.shape))
                  for n, p in unit._collect_params_with_prefix().items()
                  if n.endswith('weight'))
    assert weights == 2 * 64 * 64 // 4


def test_global_gate_is_channel_vector():
    unit = ChaATAC(4, r=2, use_global=True)
    unit.initialize()
    gate = unit.module(mx.nd.ones((1, 4, 6, 6)))
    assert gate.shape == (1, 4, 1, 1)


@pytest.mark.parametrize('channels,r', [(16, 0), (16, -2), (4, 8), (16, 2.5)])
def test_bad_reduction_ratio_names_channels_and_r(channels, r):
    with pytest.raises(ValueError) as err:
        ChaATAC(channels, r=r)
    assert 'r=%r' % r in str(err.value) or 'r=%s' % r in str(err.value)
    assert 'channels=%d' % channels in str(err.value)


def test_norm_layer_is_honoured():
    unit = ChaATAC(8, norm_layer=mx.gluon.nn.InstanceNorm, norm_kwargs={'epsilon': 1e-3})
    norms = [c for c in unit.module._children.values()
             if isinstance(c, mx.gluon.nn.InstanceNorm)]
    assert len(norms) == 2 and norms[0]._kwargs['eps'] == 1e-3
