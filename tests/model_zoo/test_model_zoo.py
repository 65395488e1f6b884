"""The registry: every name builds, and each host family runs, hybridizes and exports."""
import os

import mxnet as mx
import numpy as np
import pytest

import gluon_atac
from gluon_atac import count_params, get_model, get_model_list

# Parameter counts of the original open-atac code for 100 classes (CIFAR) and 1000
# (ImageNet, act_layers=2): totals as save_parameters writes them, BN running statistics
# included, for ReLU and for ATAC r=2.
CIFAR_TOTALS = {8: (84192, 96640), 14: (181856, 206400), 20: (279520, 316160),
                32: (474848, 535680), 56: (865504, 974720), 110: (1744480, 1962560)}
KNOWN_COUNTS = {'cifar_resnet%d_v2' % depth: {'relu': {'total': relu}, 'ChaATAC': {'total': atac}}
                for depth, (relu, atac) in CIFAR_TOTALS.items()}
KNOWN_COUNTS['resnet50_v1b'] = {'relu': {'total': 25610152, 'trainable': 25557032},
                                'ChaATAC': {'total': 28006312, 'trainable': 27934760}}
# Every name with its default activation (ATAC), and the ReLU twins of the counted ones.
SWEEP = [(name, 'ChaATAC') for name in get_model_list()] + [
    (name, 'relu') for name in sorted(KNOWN_COUNTS)]


def test_model_list():
    names = get_model_list()
    assert ['cifar_resnet%d_v2' % (6 * b + 2) for b in range(1, 19)] == sorted(
        [n for n in names if n.startswith('cifar')], key=lambda n: int(n[12:-3]))
    for depth in (18, 34, 50, 101, 152):
        for v in 'bcd':
            assert 'resnet%d_v1%s' % (depth, v) in names
    assert {'resnet50_v1b_aa', 'resnet50_v1b_fa'} <= set(names)  # the self-attention baselines
    assert len(names) == 18 + 15 + 2
    assert set(KNOWN_COUNTS) <= set(names)


@pytest.mark.parametrize('name,act_type', SWEEP)
def test_every_name_builds_by_shape_inference(name, act_type):
    # Symbolic shape inference composes the whole graph without initializing or running
    # it; the forward passes below cover each host family, block type and act placement.
    config = gluon_atac.get_model_config(name)
    # The paper's CIFAR counts are of 100-class heads.
    classes = 100 if config.dataset == 'cifar10' else config.classes
    size = config.input_size
    net = get_model(name, classes=classes, act_type=act_type)
    out = net(mx.sym.var('data'))
    args, outputs, aux = out.infer_shape(data=(2, 3, size, size))
    assert outputs == [(2, classes)]
    counts = count_params(net)
    # CIFAR hosts declare every shape: the graph must agree with the declared counts.
    assert counts['total'] == sum(int(np.prod(s)) for s in aux) + sum(
        int(np.prod(s)) for n, s in zip(out.list_arguments(), args) if n != 'data')
    expected = KNOWN_COUNTS.get(name, {}).get(act_type, {})
    assert {k: counts[k] for k in expected} == expected


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
    # Eager ATAC units run the native operators, the exported graph Gluon's: the float32
    # sums differ in order, by up to ~2e-5 on logits of magnitude ~5.
    tolerance = dict(rtol=1e-4, atol=1e-4)
    symbol, params = gluon_atac.export(net, str(tmp_path / 'net'), input_shape=(2, 3, size, size))
    np.testing.assert_allclose(net(x).asnumpy(), eager, **tolerance)
    assert os.path.isfile(symbol) and os.path.isfile(params)
    imported = mx.gluon.SymbolBlock.imports(symbol, ['data'], params)
    np.testing.assert_allclose(imported(x).asnumpy(), eager, **tolerance)


@pytest.mark.parametrize('name,expected', [
    ('cifar_resnet56_v2', dict(classes=10, input_size=32, dataset='cifar10', act_layers=4,
                               crop_ratio=None, mean=(0.4914, 0.4822, 0.4465),
                               std=(0.2023, 0.1994, 0.2010))),
    # GluonCV's ImageNet statistics, given on the 0..255 scale.
    ('ResNet50_v1b', dict(classes=1000, input_size=224, dataset='imagenet', act_layers=2,
                          crop_ratio=0.875, mean=(123.68 / 255, 116.779 / 255, 103.939 / 255),
                          std=(58.393 / 255, 57.12 / 255, 57.375 / 255))),
])
def test_each_model_registers_its_defaults(name, expected):
    config = gluon_atac.get_model_config(name)
    got = {key: getattr(config, key) for key in expected}
    for key in ('mean', 'std'):
        assert got.pop(key) == pytest.approx(expected.pop(key), rel=1e-12)
    assert got == expected
    net = get_model(name)
    assert net(mx.sym.var('data')).infer_shape(
        data=(1, 3, config.input_size, config.input_size))[1] == [(1, config.classes)]


def test_pretrained_true_says_weights_are_a_path():
    with pytest.raises(ValueError, match=r"pretrained=True: gluon_atac downloads nothing; "
                                         r"give the path of a \.params file"):
        get_model('resnet50_v1b', pretrained=True)


def test_a_norm_layer_by_name_builds_the_same_network():
    by_name = get_model('cifar_resnet8_v2', norm_layer='BatchNorm')
    by_class = get_model('cifar_resnet8_v2', norm_layer=mx.gluon.nn.BatchNorm)
    shapes = lambda net: {k: v.shape for k, v in net._collect_params_with_prefix().items()}
    assert shapes(by_name) == shapes(by_class)
