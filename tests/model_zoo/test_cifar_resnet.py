"""CIFAR pre-activation ResNet: structure, FLOPs, compatibility with open-atac's files."""
import json
import os

import mxnet as mx
import numpy as np
import pytest

from gluon_atac import ChaATAC, get_model, count_params, count_flops
from gluon_atac.model_zoo import stage_act_types
from gluon_atac.utils.onnx_export import float32_sensitivity

def test_fixture_names_and_shapes(open_atac_dir):
    with open(os.path.join(open_atac_dir, 'r20_b3_chaatac_r2_relu_c100.json')) as handle:
        spec = json.load(handle)
    net = get_model('cifar_resnet20_v2', classes=100, act_type='ChaATAC', r=2,
                    use_relu=True, use_global=False, act_layers=4)
    ours = {k: list(p.shape) for k, p in net._collect_params_with_prefix().items()}
    assert ours == spec['names']
    assert count_params(net)['total'] == spec['total_params'] == 316160


def test_open_atac_params_give_the_same_logits(open_atac_dir):
    path = os.path.join(open_atac_dir, 'r20_b3_chaatac_r2_relu_c100.params')
    data = np.load(os.path.join(open_atac_dir, 'r20_b3_chaatac_r2_relu_c100.npz'))
    net = get_model('cifar_resnet20_v2', classes=100)
    net.load_parameters(path)  # plain Gluon loading works, names are the original's
    # The logits were computed on another CPU: allow what float32 noise moves them by.
    tolerance = 30 * float32_sensitivity(net, data['x'])
    assert 0 < tolerance < 1e-3 * np.abs(data['y']).max()
    logits = net(mx.nd.array(data['x'])).asnumpy()
    assert np.abs(logits - data['y']).max() < tolerance
    net = get_model('cifar_resnet20_v2', classes=100, pretrained=path)
    net.hybridize()
    assert np.abs(net(mx.nd.array(data['x'])).asnumpy() - data['y']).max() < tolerance


def _acts(net):
    stages = [net.features[i] for i in (2, 3, 4)]
    return ([type(s[0].msAA1).__name__ for s in stages], type(net.features[6]).__name__)


@pytest.mark.parametrize('act_layers,order,stages,head', [
    (4, 'bac', [True, True, True], True),
    (1, 'bac', [False, False, False], True),
    (2, 'bac', [False, False, True], True),
    (0, 'bac', [False, False, False], False),
    (1, 'pre', [True, False, False], False),
    (3, 'pre', [True, True, True], False),
    (4, 'pre', [True, True, True], True),
])
def test_act_layers_place_the_act_type(act_layers, order, stages, head):
    net = get_model('cifar_resnet8_v2', act_layers=act_layers, act_order=order)
    got_stages, got_head = _acts(net)
    assert [s == 'ChaATAC' for s in got_stages] == stages
    assert (got_head == 'ChaATAC') == head
    assert stage_act_types('x', act_layers, order, 'relu') == (
        ['x' if s else 'relu' for s in stages], 'x' if head else 'relu')


def test_block_structure():
    net = get_model('cifar_resnet14_v2', classes=10)
    first, second = net.features[3][0], net.features[3][1]
    assert first.msAA1.channels == 16 and first.msAA2.channels == 32
    assert first.downsample.weight.shape == (32, 16, 1, 1)
    assert first.conv1._kwargs['stride'] == (2, 2)
    assert second.downsample is None
    stem = net.features[0]
    assert stem.gamma.grad_req == 'null' and stem.beta.grad_req == 'null'


def test_shortcut_projects_the_raw_input():
    # zeroing every conv but the projection leaves the projected *raw* input
    net = get_model('cifar_resnet8_v2', act_type='relu')
    net.initialize()
    block = net.features[3][0]
    x = mx.nd.array(np.random.RandomState(0).randn(2, 16, 8, 8))
    for conv in (block.conv1, block.conv2):
        conv.weight.set_data(mx.nd.zeros(conv.weight.shape))
    expected = mx.nd.Convolution(x, block.downsample.weight.data(), kernel=(1, 1),
                                 stride=(2, 2), num_filter=32, no_bias=True)
    np.testing.assert_allclose(block(x).asnumpy(), expected.asnumpy(), rtol=1e-5, atol=1e-6)


def test_flops_of_resnet20():
    relu = count_flops(get_model('cifar_resnet20_v2', classes=100, act_type='relu'),
                       (1, 3, 32, 32))
    atac = count_flops(get_model('cifar_resnet20_v2', classes=100), (1, 3, 32, 32))
    # stem + 3 stages (each 6 3x3 convs, stages 2-3 with a projection) + dense, by hand
    assert relu == {'macs': 40818944, 'gate_ops': 0}
    # 19 units (6 per stage + head), each C^2 x H x W = 262,144 MACs here
    assert atac['macs'] - relu['macs'] == 19 * 262144
    # per unit 4 C H W: inner BN+ReLU on C/2, outer BN, sigmoid, product on C
    assert atac['gate_ops'] == 4 * (6 * 16384 + (16384 + 5 * 8192) + (8192 + 5 * 4096) + 4096)


def test_norm_layer_passes_through():
    net = get_model('cifar_resnet8_v2', norm_layer=mx.gluon.nn.InstanceNorm)
    norms = []
    net.apply(lambda b: norms.append(b) if isinstance(b, mx.gluon.nn.InstanceNorm) else None)
    chaatac = []
    net.apply(lambda b: chaatac.append(b) if isinstance(b, ChaATAC) else None)
    # stem + 2 per block + head + 2 per ATAC unit
    assert len(chaatac) == 7 and len(norms) == 1 + 2 * 3 + 1 + 2 * 7


def test_counts_do_not_depend_on_initialization_or_the_fused_gate():
    fresh = get_model('cifar_resnet8_v2')
    trained = get_model('cifar_resnet8_v2')
    trained.initialize()
    trained(mx.nd.zeros((1, 3, 32, 32)))
    for net in (fresh, trained):
        assert count_flops(net, (1, 3, 32, 32)) == count_flops(fresh, (1, 3, 32, 32))
        assert count_params(net) == count_params(fresh)
    assert all(unit.fused is None for unit in _units(trained))


def _units(net):
    found = []
    net.apply(lambda b: found.append(b) if isinstance(b, ChaATAC) else None)
    return found
