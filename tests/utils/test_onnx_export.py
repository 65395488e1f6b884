"""ONNX export of the zoo: parity with MXNet in ONNX Runtime, dynamic batch, errors, and
the check that judges a conversion by the network's own float32 sensitivity."""
import builtins

import mxnet as mx
import numpy as np
import pytest

import gluon_atac as ga
from gluon_atac.utils.onnx_export import (DEFAULT_FACTOR, OnnxError, check_conversion,
                                          compare_runtimes, export_onnx, float32_sensitivity,
                                          onnx_session, read_metadata)

pytest.importorskip('onnxruntime')

# Every act type, the ablations and both attentions on the smallest CIFAR host; every
# v1 stem/shortcut variant with ATAC, GE and SE on the smallest ImageNet host.
CASES = [('cifar_resnet8_v2', dict(act_type=act)) for act in
         ('relu', 'prelu', 'elu', 'selu', 'gelu', 'swish', 'xunit', 'ChaATAC')] + [
    ('cifar_resnet8_v2', dict(act_type='ChaATAC', use_global=True)),
    ('cifar_resnet8_v2', dict(act_type='ChaATAC', use_relu=False)),
    ('cifar_resnet8_v2', dict(act_type='relu', attention='se')),
    ('cifar_resnet8_v2', dict(act_type='relu', attention='ge')),
    ('resnet18_v1b', dict(act_type='ChaATAC', input_size=32)),
    ('resnet18_v1c', dict(act_type='relu', attention='ge', input_size=32)),
    ('resnet18_v1d', dict(act_type='ChaATAC', attention='se', input_size=32)),
]


def _net(model, **options):
    mx.random.seed(0)
    net = ga.get_model(model, classes=10, **options)
    net.initialize(mx.init.MSRAPrelu())
    return net


def _images(count, size, seed=0):
    return np.random.RandomState(seed).standard_normal((count, 3, size, size)).astype(
        np.float32)


@pytest.mark.parametrize('model, options', CASES,
                         ids=['%s-%s' % (m, '-'.join(map(str, o.values()))) for m, o in CASES])
def test_every_zoo_network_converts_with_mxnet_logits(model, options, tmp_path):
    size = options.get('input_size', 32)
    net = _net(model, **options)
    path = export_onnx(net, str(tmp_path / 'net.onnx'), (1, 3, size, size))
    report = compare_runtimes(net, onnx_session(path, threads=1), _images(3, size), rounds=1)
    # float32 reordering: a few 1e-7 of the logit scale, far below 1e-4
    assert report['max_abs_diff'] <= 1e-5 * max(1.0, report['max_abs_logit'])
    assert report['top1_agreement'] == 1.0


def test_one_file_serves_batch_1_and_5_with_weights_as_initializers_only(tmp_path):
    import onnx
    net = _net('cifar_resnet8_v2', act_type='ChaATAC')
    path = export_onnx(net, str(tmp_path / 'r8.onnx'), (1, 3, 32, 32),
                       metadata={'model': 'cifar_resnet8_v2'})
    model = onnx.load(path)
    assert [i.name for i in model.graph.input] == ['data']
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 0  # symbolic
    assert model.opset_import[0].version == 13
    assert read_metadata(path) == {'model': 'cifar_resnet8_v2'}
    session = onnx_session(path, threads=1)
    for count in (1, 5):
        x = _images(count, 32, seed=count)
        got = session.run(None, {'data': x})[0]
        assert got.shape == (count, 10)
        np.testing.assert_allclose(got, net(mx.nd.array(x)).asnumpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('size', [40, 64])
def test_gather_excite_pools_other_sizes_like_mxnet(size, tmp_path):
    # 40 leaves uneven windows (40 -> 32, 20 -> 16, 10 -> 8), 64 even ones.
    net = _net('cifar_resnet8_v2', act_type='relu', attention='ge')
    path = export_onnx(net, str(tmp_path / 'ge.onnx'), (1, 3, size, size),
                       dynamic_batch=False)
    x = _images(1, size)
    got = onnx_session(path, threads=1).run(None, {'data': x})[0]
    np.testing.assert_allclose(got, net(mx.nd.array(x)).asnumpy(), rtol=1e-4, atol=1e-5)


class _CubeRoot(mx.gluon.HybridBlock):
    def __init__(self, **kwargs):
        super(_CubeRoot, self).__init__(**kwargs)
        with self.name_scope():
            self.conv = mx.gluon.nn.Conv2D(4, 3, in_channels=3)

    def hybrid_forward(self, F, x):
        return F.cbrt(self.conv(x))


def test_an_operator_onnx_lacks_names_the_layer(tmp_path):
    net = _CubeRoot(prefix='head_')
    net.initialize()
    with pytest.raises(OnnxError) as err:
        export_onnx(net, str(tmp_path / 'x.onnx'), (1, 3, 8, 8))
    message = str(err.value)
    assert '\n' not in message
    assert message.startswith('cannot convert layer head_cbrt0 (operator cbrt) to ONNX')


def test_without_the_extra_the_error_says_how_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.split('.')[0] in ('onnx', 'onnxruntime'):
            raise ImportError('No module named %r' % name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, '__import__', no_onnx)
    with pytest.raises(OnnxError, match=r"pip install -c constraints.txt -e '\.\[onnx\]'"):
        export_onnx(_net('cifar_resnet8_v2', act_type='relu'), str(tmp_path / 'x.onnx'),
                    (1, 3, 32, 32))


def _tolerance_follows_the_sensitivity(report):
    assert report['sensitivity'] >= 0 and report['factor'] == DEFAULT_FACTOR
    assert report['tolerance'] == pytest.approx(
        DEFAULT_FACTOR * max(report['sensitivity'], report['sensitivity_floor']))


def test_a_chaotic_deep_net_passes_and_a_dropped_batchnorm_fails(chaotic_resnet32,
                                                                 drop_batchnorm, tmp_path):
    # Issue 17's network: ResNet-32, ATAC without inner ReLU, random BN statistics.
    net, _ = chaotic_resnet32
    path = export_onnx(net, str(tmp_path / 'r32.onnx'), (1, 3, 32, 32))
    x = _images(16, 32)
    good = check_conversion(net, onnx_session(path, threads=1), x, rounds=1)
    # Rounding the input moves MXNet's own logits past the old yardstick (1e-4 of their
    # scale), which refused this correct conversion.
    assert good['sensitivity'] > 1e-4 * max(1.0, good['max_abs_logit'])
    assert good['passed'] and good['max_abs_diff'] <= good['tolerance']
    _tolerance_follows_the_sensitivity(good)
    # Still a yardstick: below the logit scale, so a lost layer shows.
    assert good['tolerance'] < good['max_abs_logit']
    bad = check_conversion(net, onnx_session(drop_batchnorm(path), threads=1), x, rounds=1)
    assert not bad['passed'] and bad['max_abs_diff'] > bad['tolerance']


def test_a_well_conditioned_net_gets_a_tight_tolerance_that_a_wrong_weight_fails(tmp_path):
    import onnx
    from onnx import numpy_helper
    # Initial BN statistics (mean 0, variance 1) and a shallow host: no amplification.
    net = _net('cifar_resnet8_v2', act_type='ChaATAC')
    path = export_onnx(net, str(tmp_path / 'r8.onnx'), (1, 3, 32, 32))
    x = _images(3, 32)
    good = check_conversion(net, onnx_session(path, threads=1), x, rounds=1)
    assert good['passed'] and good['sensitivity'] > 0
    _tolerance_follows_the_sensitivity(good)
    assert good['tolerance'] <= 1e-4 * max(1.0, good['max_abs_logit'])
    # One number of the stem convolution 1% off, a bug that must not hide in the noise.
    model = onnx.load(path)
    weight = next(w for w in model.graph.initializer if w.name.endswith('conv0_weight'))
    value = numpy_helper.to_array(weight).copy()
    value.flat[0] *= 1.01
    weight.CopyFrom(numpy_helper.from_array(value, weight.name))
    onnx.save(model, str(tmp_path / 'off.onnx'))
    bad = check_conversion(net, onnx_session(str(tmp_path / 'off.onnx'), threads=1), x,
                           rounds=1)
    assert not bad['passed'] and bad['max_abs_diff'] > bad['tolerance']


def test_inputs_the_noise_cannot_move_leave_the_floor(tmp_path):
    # Relative noise leaves zeros zero; the floor keeps the check from demanding equality.
    net = _net('cifar_resnet8_v2', act_type='relu')
    x = np.zeros((2, 3, 32, 32), np.float32)
    assert float32_sensitivity(net, x) == 0.0
    path = export_onnx(net, str(tmp_path / 'r8.onnx'), (1, 3, 32, 32))
    report = check_conversion(net, onnx_session(path, threads=1), x, rounds=1)
    assert report['sensitivity_floor'] > 0
    assert report['tolerance'] == pytest.approx(DEFAULT_FACTOR * report['sensitivity_floor'])
    assert report['passed']
