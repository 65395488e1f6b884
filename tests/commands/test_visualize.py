"""Gate pictures of a CIFAR and a v1b model, from saved parameters and an image file."""

import matplotlib.image
import mxnet as mx
import numpy as np
import pytest

import gluon_atac as ga
from gluon_atac.commands.visualize import capture_gates, find_units, main, stage_of


@pytest.fixture
def image_file(tmp_path):
    rng = np.random.RandomState(0)
    path = str(tmp_path / 'cat.png')
    matplotlib.image.imsave(path, rng.randint(0, 255, size=(48, 40, 3)).astype(np.uint8))
    return path


def _saved(tmp_path, model, size, **kwargs):
    net = ga.get_model(model, **kwargs)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, size, size)))
    path = str(tmp_path / (model + '.params'))
    net.save_parameters(path)
    return net, path


def test_gates_are_captured_per_unit_in_forward_order():
    net = ga.get_model('cifar_resnet8_v2', classes=10)
    net.initialize(mx.init.MSRAPrelu())
    x = mx.nd.random.uniform(shape=(1, 3, 32, 32))
    out, gates = capture_gates(net, x)
    np.testing.assert_allclose(out.asnumpy(), net(x).asnumpy(), rtol=1e-5)
    assert [name for name, _ in gates] == [
        'features.2.0.msAA1', 'features.2.0.msAA2', 'features.3.0.msAA1',
        'features.3.0.msAA2', 'features.4.0.msAA1', 'features.4.0.msAA2', 'features.6']
    assert [g.shape for _, g in gates][::2] == [(1, 16, 32, 32), (1, 16, 32, 32),
                                                (1, 32, 16, 16), (1, 64, 8, 8)]
    assert all(((g > 0) & (g < 1)).all() for _, g in gates)
    assert [stage_of(n) for n, _ in gates] == ['stage 1'] * 2 + ['stage 2'] * 2 + \
        ['stage 3'] * 2 + ['head']


def test_cifar_model_picture(tmp_path, image_file):
    _, params = _saved(tmp_path, 'cifar_resnet8_v2', 32, classes=10)
    path = main(['cifar_resnet8_v2', '--params', params, '--image', image_file,
                 '--out', str(tmp_path / 'out')])
    assert path == str(tmp_path / 'out' / 'cat_gates.png')
    assert matplotlib.image.imread(path).shape[1] > 1000


def test_v1b_model_picture(tmp_path, image_file):
    net, params = _saved(tmp_path, 'resnet18_v1b', 64, classes=7, input_size=64)
    assert [n for n, _ in find_units(net)] == ['layer3.0.relu1', 'layer3.1.relu1',
                                                'layer4.0.relu1', 'layer4.1.relu1']
    path = main(['resnet18_v1b', '--params', params, '--image', image_file, '--out',
                 str(tmp_path), '--input-size', '64'])
    assert matplotlib.image.imread(path).shape[0] > 300


def test_bad_inputs_exit_with_one_line(tmp_path, image_file, capsys):
    _, params = _saved(tmp_path, 'cifar_resnet8_v2', 32, classes=10, act_type='relu')
    for argv, message in [
            (['cifar_resnet8_v2', '--params', params, '--image', 'nope.png'],
             'image not found'),
            (['cifar_resnet8_v2', '--params', params, '--image', params],
             'refused image %s: neither JPEG nor PNG' % params),
            (['cifar_resnet8_v2', '--params', params, '--image', image_file, '--act-type',
              'relu'], 'no ATAC unit')]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv + ['--out', str(tmp_path)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith('error: ') and message in err and '\n' not in err
