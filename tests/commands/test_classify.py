"""A trained run folder to ONNX and to top-5 classes, with no architecture flags."""
import json

import cv2
import mxnet as mx
import numpy as np
import pytest

import gluon_atac as ga
from gluon_atac.commands.classify import main as classify
from gluon_atac.data.preprocessing import preprocessing_for
from gluon_atac.commands.export import main as export
from gluon_atac.utils.model_card import write_model_card
from gluon_atac.utils.onnx_export import onnx_session, read_metadata

pytest.importorskip('onnxruntime')
# What `train_cifar.py --act-type atac` trains: ATAC without the inner ReLU.
OPTIONS = dict(act_type='ChaATAC', r=2, use_relu=False, use_global=False, act_layers=4)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp('deploy')
    mx.random.seed(0)
    net = ga.get_model('cifar_resnet8_v2', classes=10, **OPTIONS)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    write_model_card(str(root / 'run'), 'cifar_resnet8_v2', dict(OPTIONS, classes=10), 10,
                     'cifar10', preprocessing_for('cifar10'))
    net.save_parameters(str(root / 'run' / 'best.params'))
    image = str(root / 'cat.png')
    cv2.imwrite(image, np.random.RandomState(0).randint(0, 255, (40, 48, 3)).astype(np.uint8))
    prefix = str(root / 'out' / 'r8')
    export(['--params', str(root / 'run' / 'best.params'), '--out', prefix, '--format',
            'onnx'])
    return root, net, prefix, image


def test_onnx_export_reads_the_model_card_and_checks_itself(run):
    root, net, prefix, _ = run
    with open(prefix + '-report.json') as handle:
        report = json.load(handle)
    assert report['passed'] and 'real' not in report
    check = report['random']
    assert check['checked_on'] == 'random' and check['images'] == 16
    assert check['max_abs_diff'] <= 1e-5 * max(1.0, check['max_abs_logit'])
    assert check['top1_agreement'] == 1.0
    assert check['onnxruntime_images_per_sec'] > 0 and check['mxnet_images_per_sec'] > 0
    meta = read_metadata(prefix + '.onnx')
    assert {k: json.loads(meta[k]) for k in ('model', 'act_type', 'r', 'use_relu',
                                              'use_global', 'act_layers', 'classes',
                                              'input_size', 'mean')} == dict(
        model='cifar_resnet8_v2', act_type='ChaATAC', r=2, use_relu=False, use_global=False,
        act_layers=4, classes=10, input_size=32, mean=[0.4914, 0.4822, 0.4465])
    assert json.loads(meta['description']).startswith('resize to 32x32')
    x = np.random.RandomState(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    got = onnx_session(prefix + '.onnx', threads=1).run(None, {'data': x})[0]
    np.testing.assert_allclose(got, net(mx.nd.array(x)).asnumpy(), rtol=1e-4, atol=1e-5)
    # The old command-line default (inner ReLU on) would not even load this file.
    with_relu = ga.get_model('cifar_resnet8_v2', classes=10, **dict(OPTIONS, use_relu=True))
    with pytest.raises(ga.ParamsMismatchError):
        ga.load_parameters(with_relu, str(root / 'run' / 'best.params'))


def test_classify_runs_the_onnx_file_and_the_mxnet_export_alike(run, tmp_path, capsys):
    root, _, prefix, image = run
    export(['--params', str(root / 'run' / 'best.params'), '--out', str(tmp_path / 'r8')])
    capsys.readouterr()
    by_onnx = classify([prefix + '.onnx', image, '--json'])
    by_mxnet = classify([str(tmp_path / 'r8-symbol.json'), image, '--json'])
    assert json.loads(capsys.readouterr().out.split('\n]\n')[0] + '\n]') == by_onnx
    for a, b in zip(by_onnx[0]['top'], by_mxnet[0]['top']):
        assert a['class_id'] == b['class_id']
        assert a['probability'] == pytest.approx(b['probability'], abs=1e-5)
    assert len(by_onnx[0]['top']) == 5
    assert sum(row['probability'] for row in by_onnx[0]['top']) <= 1.0


def test_a_bad_image_is_one_line_and_the_others_still_run(run, tmp_path, capsys):
    _, _, prefix, image = run
    labels = tmp_path / 'labels.txt'
    labels.write_text(''.join('class %d\n' % i for i in range(10)))
    with pytest.raises(SystemExit) as stop:
        classify([prefix + '.onnx', str(tmp_path / 'absent.jpg'), image, '--labels',
                  str(labels)])
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert err == 'error: image not found: %s\n' % (tmp_path / 'absent.jpg')
    lines = out.splitlines()
    assert lines[0] == image and len(lines) == 6 and lines[1].split()[-2] == 'class'


def test_disagreeing_runtimes_and_flags_are_one_line_each(run, tmp_path, capsys):
    root, _, _, _ = run
    params = str(root / 'run' / 'best.params')
    for argv, message in [
            (['--tolerance', '0'], 'ONNX Runtime logits differ from MXNet by'),
            (['--quantize', 'int8'], '--quantize int8 needs --calib-data'),
            (['--r', '4'], 'does not fit')]:
        with pytest.raises(SystemExit) as stop:
            export(['--params', params, '--out', str(tmp_path / 'x'), '--format', 'onnx']
                   + argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith('error: ') and message in err[-1]
    assert err[0] == 'warning: --r 4 overrides 2 from the model card'


def test_a_fixed_batch_and_opset_12(run, tmp_path):
    import onnx
    root, _, _, _ = run
    report = export(['--params', str(root / 'run' / 'best.params'), '--out',
                     str(tmp_path / 'fixed'), '--format', 'onnx', '--dynamic-batch', 'no',
                     '--batch-size', '3', '--opset', '12'])
    model = onnx.load(str(tmp_path / 'fixed.onnx'))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    assert model.opset_import[0].version == 12
    assert report['passed'] and report['random']['images'] == 3
