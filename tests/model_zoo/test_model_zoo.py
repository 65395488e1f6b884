"""The registry: every name builds, runs, hybridizes and exports."""
import os

import mxnet as mx
import numpy as np
import pytest

import gluon_atac
from gluon_atac import get_model, get_model_list


def test_model_list():
    names = get_model_list()
    assert ['cifar_resnet%d_v2' % (6 * b + 2) for b in range(1, 19)] == sorted(
        [n for n in names if n.startswith('cifar')], key=lambda n: int(n[12:-3]))
    for depth in (18, 34, 50, 101, 152):
        for v in 'bcd':
            assert 'resnet%d_v1%s' % (depth, v) in names
    assert len(names) == 18 + 15


@pytest.mark.parametrize('name', get_model_list())
def test_forward_shape_of_every_name(name):
    net = get_model(name, classes=5)
    net.initialize(mx.init.MSRAPrelu())
    assert net(mx.nd.zeros((1, 3, 32, 32))).shape == (1, 5)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match='unknown model .*cifar_resnet20_v2'):
        get_model('cifar_resnet21_v2')


@pytest.mark.parametrize('name,kwargs,size', [
    ('cifar_resnet8_v2', {}, 32),
    ('cifar_resnet8_v2', {'use_global': True, 'use_relu': False}, 32),
    ('cifar_resnet8_v2', {'act_type': 'xunit'}, 32),
    ('resnet18_v1b', {'act_layers': 4}, 64),
    ('resnet50_v1c', {}, 64),
    ('resnet50_v1d', {'act_type': 'swish'}, 64),
])
def test_hybridized_and_exported_equal_imperative(tmp_path, name, kwargs, size):
    net = get_model(name, classes=10, **kwargs)
    net.initialize(mx.init.MSRAPrelu())
    x = mx.nd.array(np.random.RandomState(0).randn(2, 3, size, size))
    eager = net(x).asnumpy()
    symbol, params = gluon_atac.export(net, str(tmp_path / 'net'), input_shape=(2, 3, size, size))
    np.testing.assert_allclose(net(x).asnumpy(), eager, rtol=1e-4, atol=1e-5)
    assert os.path.isfile(symbol) and os.path.isfile(params)
    imported = mx.gluon.SymbolBlock.imports(symbol, ['data'], params)
    np.testing.assert_allclose(imported(x).asnumpy(), eager, rtol=1e-4, atol=1e-5)
