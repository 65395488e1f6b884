"""Checked parameter loading: files of another architecture are named as such."""
import os
import shutil

import mxnet as mx
import numpy as np
import pytest

from gluon_atac import get_model, load_parameters, ParamsMismatchError

FIXTURE = 'r20_b3_chaatac_r2_relu_c100.params'


def _load(name, path, **kwargs):
    return load_parameters(get_model(name, **kwargs), path)


def test_other_depth_lists_unexpected_names(open_atac_dir):
    with pytest.raises(ParamsMismatchError) as err:
        _load('cifar_resnet14_v2', os.path.join(open_atac_dir, FIXTURE), classes=100)
    assert '90 unexpected (features.2.2.bn1.beta' in str(err.value)


def test_other_act_type_lists_missing_and_unexpected(open_atac_dir):
    with pytest.raises(ParamsMismatchError) as err:
        _load('cifar_resnet20_v2', os.path.join(open_atac_dir, FIXTURE), classes=100,
              act_type='xunit')
    message = str(err.value)
    assert '171 missing (features.2.0.msAA1.module.0.beta' in message
    assert '190 unexpected (features.2.0.msAA1.module.0.weight' in message


def test_other_shapes_are_listed(open_atac_dir):
    with pytest.raises(ParamsMismatchError) as err:
        _load('cifar_resnet20_v2', os.path.join(open_atac_dir, FIXTURE), classes=10)
    assert '2 shapes differ (output.bias file (100,) vs model (10,)' in str(err.value)
    with pytest.raises(ParamsMismatchError, match='module.0.weight file .8, 16, 1, 1. vs '
                                                  'model .4, 16, 1, 1.'):
        _load('cifar_resnet20_v2', os.path.join(open_atac_dir, FIXTURE), classes=100, r=4)


def test_missing_and_unreadable_files(tmp_path, open_atac_dir):
    with pytest.raises(FileNotFoundError, match='parameter file not found'):
        _load('cifar_resnet8_v2', str(tmp_path / 'nope.params'))
    truncated = tmp_path / 'cut.params'
    shutil.copy(os.path.join(open_atac_dir, FIXTURE), truncated)
    with open(truncated, 'r+b') as handle:
        handle.truncate(1000)
    with pytest.raises(ParamsMismatchError, match='cannot read parameter file'):
        _load('cifar_resnet20_v2', str(truncated), classes=100)


def test_relu_resnet50_loads_a_gluoncv_file(tmp_path):
    from gluoncv.model_zoo import resnet50_v1b
    source = resnet50_v1b(classes=10)
    source.initialize()
    source(mx.nd.zeros((1, 3, 32, 32)))
    path = str(tmp_path / 'gcv.params')
    source.save_parameters(path)
    net = _load('resnet50_v1b', path, act_type='relu', classes=10)
    x = mx.nd.ones((1, 3, 32, 32))
    assert abs(net(x) - source(x)).max().asscalar() == 0


def test_float16_file_loads_into_float32_network_and_back(tmp_path):
    # The published ImageNet command casts to float16 and then saves; BatchNorm's
    # parameters stay float32 in such a file.
    net = get_model('cifar_resnet8_v2', classes=10)
    net.initialize(mx.init.MSRAPrelu())
    x = mx.nd.random.uniform(-1, 1, (2, 3, 32, 32))
    net(x)
    net.cast('float16')
    half = str(tmp_path / 'half.params')
    net.save_parameters(half)
    saved = mx.nd.load(half)
    assert saved['features.1.weight'].dtype == np.float16

    fresh = load_parameters(get_model('cifar_resnet8_v2', classes=10), half)
    for name, param in fresh._collect_params_with_prefix().items():
        assert param.data().dtype == np.float32, name
        np.testing.assert_array_equal(param.data().asnumpy(),
                                      saved[name].asnumpy().astype(np.float32))
    back = get_model('cifar_resnet8_v2', classes=10)
    back.cast('float16')
    load_parameters(back, half)
    assert back.collect_params()[back.features[1].weight.name].data().dtype == np.float16


def test_float16_file_of_another_architecture_is_still_named(tmp_path):
    net = get_model('cifar_resnet8_v2', classes=10)
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    net.cast('float16')
    half = str(tmp_path / 'half.params')
    net.save_parameters(half)
    with pytest.raises(ParamsMismatchError, match='shapes differ'):
        _load('cifar_resnet8_v2', half, classes=100)


def test_the_usual_mismatches_carry_a_hint(open_atac_dir):
    path = os.path.join(open_atac_dir, FIXTURE)
    with pytest.raises(ParamsMismatchError) as err:
        _load('cifar_resnet20_v2', path, classes=100, use_relu=False)
    assert str(err.value).endswith(
        '(only ATAC units differ: the inner ReLU or the global context does not match the '
        'file; its model card, or --useReLU/--relu/--no-relu and --useGlobal, must say how '
        'it was trained)')
    with pytest.raises(ParamsMismatchError) as err:
        _load('cifar_resnet20_v2', path, classes=10)
    assert str(err.value).endswith(
        '(only the classifier differs: give the classes the file was trained with)')
    with pytest.raises(ParamsMismatchError) as err:
        _load('cifar_resnet14_v2', path, classes=100)
    assert str(err.value).endswith(')') and 'only' not in str(err.value)
