"""ResNet v1b family through GluonCV's builder: names, shapes and FLOPs of the original's."""
import json
import os

import mxnet as mx
import pytest
from gluoncv.model_zoo import resnetv1b as gcv

from gluon_atac import ChaATAC, get_model, count_params, count_flops
from gluon_atac.utils.counting import infer_param_shapes


def test_fixture_names_and_shapes_of_atac_resnet50(open_atac_dir):
    with open(os.path.join(open_atac_dir, 'r50_v1b_chaatac_r2_al2.json')) as handle:
        spec = json.load(handle)
    net = get_model('resnet50_v1b', act_type='ChaATAC', r=2, act_layers=2, classes=1000)
    ours = infer_param_shapes(net)
    assert ours == {k: tuple(v) for k, v in spec['names'].items()}
    assert count_params(net) == {'total': 28006312, 'trainable': 27934760}
    assert spec['total_params'] == 28006312


def test_relu_variant_equals_gluoncv_resnet50_v1b():
    ours = infer_param_shapes(get_model('resnet50_v1b', act_type='relu'))
    theirs = infer_param_shapes(gcv.resnet50_v1b())
    assert ours == theirs


def test_flops_of_resnet50():
    relu = count_flops(get_model('resnet50_v1b', act_type='relu'))
    atac = count_flops(get_model('resnet50_v1b'))
    assert round(relu['macs'] / 1e9, 2) == 4.09
    assert round(atac['macs'] / 1e9, 2) == 4.40
    assert relu['macs'] == count_flops(gcv.resnet50_v1b())['macs']
    # 4 C H W per unit: stage 3 (6 blocks, C=256, 14x14 after its first conv2) and stage 4
    stage3 = 4 * 256 * (28 * 28 + 14 * 14 + 5 * 2 * 14 * 14)
    stage4 = 4 * 512 * (14 * 14 + 7 * 7 + 2 * 2 * 7 * 7)
    assert atac['gate_ops'] == stage3 + stage4 == 3913728


@pytest.mark.parametrize('act_layers,stages', [(0, []), (1, [4]), (2, [3, 4]),
                                               (4, [1, 2, 3, 4])])
def test_act_layers_count_from_the_deepest_stage(act_layers, stages):
    net = get_model('resnet50_v1b', act_layers=act_layers)
    for k in range(1, 5):
        block = getattr(net, 'layer%d' % k)[0]
        assert isinstance(block.relu1, ChaATAC) == (k in stages)
        assert isinstance(block.relu2, ChaATAC) == (k in stages)
        assert not isinstance(block.relu3, ChaATAC)


def test_basic_block_gates_only_before_the_sum():
    net = get_model('resnet18_v1b', act_layers=1)
    block = net.layer4[1]
    assert isinstance(block.relu1, ChaATAC) and block.relu1.channels == 512
    assert not isinstance(block.relu2, ChaATAC)
    assert not isinstance(net.layer3[0].relu1, ChaATAC)


def test_builder_options_pass_through():
    net = get_model('resnet50_v1d', last_gamma=True, classes=7)
    assert isinstance(net.conv1, mx.gluon.nn.HybridSequential)  # deep stem
    assert isinstance(net.layer2[0].downsample[0], mx.gluon.nn.AvgPool2D)
    net.initialize()
    assert net.layer1[0].bn3.gamma.data().asnumpy().max() == 0
    assert net(mx.nd.zeros((1, 3, 32, 32))).shape == (1, 7)


def test_norm_kwargs_reach_the_gate():
    net = get_model('resnet18_v1b', norm_kwargs={'momentum': 0.5})
    assert net.layer4[0].relu1.module[1]._kwargs['momentum'] == 0.5
