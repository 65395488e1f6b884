"""The activation factory: names, aliases, options and errors."""
import mxnet as mx
import numpy as np
import pytest

from gluon_atac import ChaATAC, XUnit, get_activation, activation_names

BASELINES = ['relu', 'prelu', 'elu', 'selu', 'gelu', 'swish', 'xunit']


def test_names_cover_the_paper():
    assert activation_names() == sorted(BASELINES + ['chaatac', 'atac'])


@pytest.mark.parametrize('name', ['ChaATAC', 'chaatac', 'ATAC', 'atac'])
def test_atac_spellings(name):
    unit = get_activation(name, 16, r=4)
    assert isinstance(unit, ChaATAC) and unit.r == 4


@pytest.mark.parametrize('name', BASELINES + ['ChaATAC'])
def test_every_unit_keeps_shape_and_hybridizes(name):
    unit = get_activation(name.upper(), 8, r=2, use_relu=True, use_global=False)
    unit.initialize()
    x = mx.nd.array(np.random.RandomState(0).randn(2, 8, 6, 6))
    eager = unit(x).asnumpy()
    unit.hybridize()
    assert eager.shape == (2, 8, 6, 6)
    np.testing.assert_allclose(unit(x).asnumpy(), eager, rtol=1e-5, atol=1e-6)


def test_baselines_compute_their_formula():
    x = np.linspace(-3, 3, 16, dtype='float32').reshape(1, 1, 4, 4)
    expected = {'relu': np.maximum(x, 0), 'swish': x / (1 + np.exp(-x)),
                'elu': np.where(x > 0, x, np.exp(x) - 1),
                'prelu': np.where(x > 0, x, 0.25 * x)}
    for name, want in expected.items():
        unit = get_activation(name, 1)
        unit.initialize()
        np.testing.assert_allclose(unit(mx.nd.array(x)).asnumpy(), want, rtol=1e-5,
                                   atol=1e-6, err_msg=name)


def test_xunit_formula():
    unit = get_activation('xunit', 2)
    assert isinstance(unit, XUnit)
    unit.initialize(mx.init.Uniform(0.5))
    x = np.random.RandomState(2).randn(1, 2, 5, 5).astype('float32')
    d = unit.module(mx.nd.array(x)).asnumpy()
    np.testing.assert_allclose(unit(mx.nd.array(x)).asnumpy(), x * np.exp(-d ** 2),
                               rtol=1e-5, atol=1e-6)
    weight = [p for n, p in unit._collect_params_with_prefix().items()
              if n.endswith('weight')][0]
    assert weight.shape == (2, 1, 3, 3)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        get_activation('SpaATAC', 16)
    assert "'SpaATAC'" in str(err.value)
    for name in BASELINES + ['chaatac']:
        assert name in str(err.value)


def test_unknown_option_is_an_error():
    with pytest.raises(TypeError, match='rr'):
        get_activation('atac', 16, rr=2)


def test_bad_r_through_factory():
    with pytest.raises(ValueError, match='channels=4 and r=8'):
        get_activation('atac', 4, r=8)
