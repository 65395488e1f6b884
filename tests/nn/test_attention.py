"""Attention baselines: registry, placement in both hosts, and the papers' counts."""
import json
import os

import mxnet as mx
import numpy as np
import pytest

import gluon_atac as ga
from gluon_atac.nn.attention import GatherExcite, SqueezeExcite, get_attention

FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'open_atac')


def test_registry_builds_by_name_and_lists_valid_names():
    assert isinstance(get_attention('SE', 64), SqueezeExcite)
    assert isinstance(get_attention('gather-excite', 64, spatial=8), GatherExcite)
    with pytest.raises(ValueError, match='valid names: .*ge.*se'):
        get_attention('cbam', 64)
    with pytest.raises(TypeError, match='unknown attention option'):
        get_attention('se', 64, ratio=4)
    with pytest.raises(ValueError, match='spatial'):
        get_attention('ge', 64)


@pytest.mark.parametrize('name', ['se', 'ge'])
def test_gate_keeps_shape_and_other_sizes_run(name):
    unit = get_attention(name, 32, spatial=8, reduction=4)
    unit.initialize()
    for side in (8, 5):
        x = mx.nd.random.normal(shape=(2, 32, side, side))
        y = unit(x)
        assert y.shape == x.shape
        # A sigmoid gate only shrinks magnitudes.
        assert (mx.nd.abs(y) <= mx.nd.abs(x) + 1e-6).asnumpy().all()


def test_resnet50_totals_match_the_papers_rows():
    """SE-ResNet-50 28.1M (Hu et al. CVPR 2018), GE-θ+-ResNet-50 33.7M (NeurIPS 2018).

    Totals count BN running statistics, as the original's saved files do; both fall
    within 2% of the rows.
    """
    published = {'se': 28.1e6, 'ge': 33.7e6}
    for name, paper in published.items():
        net = ga.get_model('resnet50_v1b', act_type='relu', attention=name)
        total = ga.count_params(net)['total']
        assert abs(total - paper) / paper < 0.02, (name, total)
    assert ga.count_params(ga.get_model('resnet50_v1b', act_type='relu',
                                        attention='se'))['total'] == 28141144
    assert ga.count_params(ga.get_model('resnet50_v1b', act_type='relu',
                                        attention='ge'))['total'] == 33720920


def test_resnet50_gmacs_on_the_v1b_host():
    macs = {name: ga.count_flops(ga.get_model('resnet50_v1b', act_type='relu',
                                              attention=name))['macs']
            for name in (None, 'se', 'ge')}
    assert macs[None] == 4089184256
    assert macs['se'] == 4091699200   # +0.06%: the excitation runs on pooled 1x1 maps
    assert macs['ge'] == 4097218560   # +0.20%: the gather kernel spans each map once


def test_attention_sits_on_the_residual_branch_of_every_block():
    net = ga.get_model('resnet50_v1b', act_type='relu', attention='se')
    names = net._collect_params_with_prefix()
    assert 'layer1.0.attention.excite.0.weight' in names
    assert names['layer4.2.attention.excite.2.weight'].shape == (2048, 128, 1, 1)
    ge = ga.get_model('resnet18_v1b', act_type='relu', attention='ge')
    shapes = {k: v.shape for k, v in ge._collect_params_with_prefix().items()}
    assert shapes['layer1.0.attention.gather.weight'] == (64, 1, 56, 56)
    assert shapes['layer4.1.attention.gather.weight'] == (512, 1, 7, 7)
    cifar = ga.get_model('cifar_resnet8_v2', act_type='relu', attention='ge')
    shapes = {k: v.shape for k, v in cifar._collect_params_with_prefix().items()}
    assert shapes['features.2.0.attention.gather.weight'] == (16, 1, 32, 32)
    assert shapes['features.4.0.attention.gather.weight'] == (64, 1, 8, 8)


@pytest.mark.parametrize('model', ['cifar_resnet8_v2', 'resnet18_v1b'])
@pytest.mark.parametrize('name', ['se', 'ge'])
def test_hosts_with_attention_run_hybridized(model, name):
    size = 32 if model.startswith('cifar') else 64
    extra = {} if model.startswith('cifar') else {'input_size': size}
    net = ga.get_model(model, act_type='atac', attention=name, classes=5, **extra)
    net.initialize(mx.init.MSRAPrelu())
    net.hybridize()
    assert net(mx.nd.random.uniform(shape=(2, 3, size, size))).shape == (2, 5)


def test_without_attention_the_original_files_still_load():
    stem = os.path.join(FIXTURES, 'r20_b3_chaatac_r2_relu_c100')
    net = ga.get_model('cifar_resnet20_v2', classes=100, attention=None,
                       pretrained=stem + '.params')
    data = np.load(stem + '.npz')
    np.testing.assert_allclose(net(mx.nd.array(data['x'])).asnumpy(), data['y'],
                               rtol=1e-4, atol=1e-4)
    with open(os.path.join(FIXTURES, 'r50_v1b_chaatac_r2_al2.json')) as f:
        expected = json.load(f)
    r50 = ga.get_model('resnet50_v1b', attention=None)
    shapes = ga.utils.counting.infer_param_shapes(r50)
    assert shapes == {name: tuple(shape) for name, shape in expected['names'].items()}
