"""python -m gluon_atac.export: symbol + params, INT8, the ONNX check, and the example in
docs/deployment.md."""
import json
import os
import re
import subprocess
import sys
import types

import cv2
import mxnet as mx
import numpy as np
import pytest

import gluon_atac as ga
from gluon_atac.data.imagenet import val_batches, write_synthetic_imagenet
from gluon_atac.commands.export import main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('export')
    data = write_synthetic_imagenet(str(root / 'data'), classes=4, train_per_class=1,
                                    val_per_class=4, size=40)
    mx.random.seed(0)
    net = ga.get_model('resnet18_v1b', classes=4)
    net.initialize(mx.init.MSRAPrelu())
    # BN running statistics of the data, as a trained network has: with the initial ones
    # (mean 0, variance 1) activations drift far and any quantization looks poor.
    images = mx.nd.concat(*[d for d, _ in val_batches(os.path.join(data, 'val'), 16, 32,
                                                       num_workers=0)], dim=0)
    net.hybridize()
    for _ in range(5):
        # oneDNN updates the running statistics in the backward pass.
        with mx.autograd.record():
            out = net(images)
        out.backward()
    net.save_parameters(str(root / 'r18.params'))
    return types.SimpleNamespace(root=root, data=data, params=str(root / 'r18.params'),
                                 flags=['resnet18_v1b', '--params', str(root / 'r18.params'),
                                        '--classes', '4', '--input-size', '32'])


def _reference(params, x):
    net = ga.get_model('resnet18_v1b', classes=4)
    ga.load_parameters(net, params)
    return net(x).asnumpy()


def test_export_reimports_with_the_same_outputs(setup, tmp_path):
    prefix = str(tmp_path / 'out' / 'r18')
    main(setup.flags + ['--out', prefix])
    net = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'],
                                       prefix + '-0000.params')
    x = mx.nd.random.normal(shape=(3, 3, 32, 32))
    np.testing.assert_allclose(net(x).asnumpy(), _reference(setup.params, x), rtol=1e-4,
                               atol=1e-5)


def test_export_of_an_original_file_gives_the_original_logits(open_atac_dir, tmp_path):
    # Parameters and logits written by the original open-atac code (ResNet-20, ATAC r=2).
    stem = os.path.join(open_atac_dir, 'r20_b3_chaatac_r2_relu_c100')
    prefix = str(tmp_path / 'r20')
    main(['cifar_resnet20_v2', '--params', stem + '.params', '--act-type', 'ChaATAC', '--r',
          '2', '--classes', '100', '--input-size', '32', '--out', prefix])
    net = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'],
                                       prefix + '-0000.params')
    data = np.load(stem + '.npz')
    np.testing.assert_allclose(net(mx.nd.array(data['x'])).asnumpy(), data['y'], rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize('calib, workers', [('val.rec', '1'), ('val', '0')])
def test_int8_is_close_and_reports_agreement_and_speed(setup, tmp_path, capsys, calib,
                                                       workers):
    # A record file (written with mx.recordio) or a class folder. The folder is read in
    # the test's own process: loader processes forked from a process that already ran
    # oneDNN hung once in the full suite.
    prefix = str(tmp_path / 'r18_int8')
    report = main(setup.flags + ['--out', prefix, '--quantize', 'int8', '--calib-data',
                                 os.path.join(setup.data, calib), '--calib-batches', '2',
                                 '--batch-size', '4', '-j', workers])
    out = capsys.readouterr().out
    assert 'top-1 agreement' in out and 'speed-up' in out
    assert report['fp32']['images'] == report['int8']['images'] == 16
    assert report['calibration_images'] == 8
    assert 0.0 <= report['top1_agreement'] <= 1.0 and report['speedup'] > 0
    assert report['max_abs_diff'] <= 0.25 * report['max_abs_logit']
    assert os.path.exists(prefix + '-report.json')
    int8 = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'],
                                        prefix + '-0000.params')
    # The re-imported files compute what was measured (on the real images calibrated for).
    diff = max(np.abs(int8(x).asnumpy() - _reference(setup.params, x)).max()
               for x, _ in val_batches(os.path.join(setup.data, calib), 4, 32,
                                       num_workers=1))
    assert diff == pytest.approx(report['max_abs_diff'], rel=1e-3, abs=1e-4)


def test_int8_needs_calibration_data(setup, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(setup.flags + ['--out', str(tmp_path / 'q'), '--quantize', 'int8'])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith('error: --quantize int8 needs --calib-data')


# The reporter's network of issue 17, without a model card.
CHAOTIC_FLAGS = ['cifar_resnet32_v2', '--no-relu', '--classes', '100', '--dataset', 'cifar100',
                 '--input-size', '32', '--format', 'onnx']


def _check_lines(out):
    return [line for line in out.splitlines() if line.startswith('ONNX Runtime vs MXNet')]


def test_onnx_of_a_chaotic_deep_net_passes_on_random_and_real_images(chaotic_resnet32, setup,
                                                                     tmp_path, capsys):
    _, params = chaotic_resnet32
    prefix = str(tmp_path / 'r32')
    val = os.path.join(setup.data, 'val')
    report = main(CHAOTIC_FLAGS + ['--params', params, '--out', prefix, '--calib-data', val,
                                   '-j', '0'])
    lines = _check_lines(capsys.readouterr().out)
    with open(prefix + '-report.json') as handle:
        assert json.load(handle) == report
    assert report['passed'] and report['tolerance_factor'] == 10
    for name, source, line in zip(('random', 'real'), ('random', val), lines):
        check = report[name]
        assert check['checked_on'] == source and check['images'] == 16
        assert check['sensitivity'] > 0 and check['max_abs_diff'] <= check['tolerance']
        assert check['tolerance'] == pytest.approx(10 * max(check['sensitivity'],
                                                            check['sensitivity_floor']))
        assert check['passed'] and 0 <= check['top1_agreement'] <= 1
        assert line.startswith('ONNX Runtime vs MXNet on 16 images (%s): max |logit diff| '
                               '%.3g, float32 sensitivity %.3g, tolerance %.3g, '
                               % (source, check['max_abs_diff'], check['sensitivity'],
                                  check['tolerance']))
        assert 'passed' in line
    assert len(lines) == 2
    # What the old yardstick (1e-4 of the logit scale) refused: float32 noise exceeds it.
    assert report['random']['sensitivity'] > 1e-4 * max(1, report['random']['max_abs_logit'])


def test_a_wrong_onnx_conversion_fails_in_one_line(chaotic_resnet32, drop_batchnorm,
                                                   monkeypatch, tmp_path, capsys):
    from gluon_atac.commands import export as command
    real_export = command.export_onnx
    monkeypatch.setattr(command, 'export_onnx',
                        lambda *args, **kwargs: drop_batchnorm(real_export(*args, **kwargs)))
    prefix = str(tmp_path / 'r32')
    with pytest.raises(SystemExit) as stop:
        main(CHAOTIC_FLAGS + ['--params', chaotic_resnet32[1], '--out', prefix])
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    with open(prefix + '-report.json') as handle:
        report = json.load(handle)
    check = report['random']
    assert not report['passed'] and check['max_abs_diff'] > check['tolerance']
    assert _check_lines(out)[0].endswith(': FAILED')
    assert err == ('error: ONNX Runtime logits differ from MXNet by %.3g on random images, '
                   'more than the tolerance %.3g (--tolerance 10 x the float32 sensitivity '
                   '%.3g, at least %.3g); see %s-report.json\n'
                   % (check['max_abs_diff'], check['tolerance'], check['sensitivity'],
                      check['sensitivity_floor'], prefix))


def test_a_well_conditioned_net_is_held_to_a_tight_tolerance(setup, tmp_path, capsys):
    # BN statistics of the data, as a trained network has.
    report = main(setup.flags + ['--out', str(tmp_path / 'r18'), '--format', 'onnx',
                                 '--calib-data', os.path.join(setup.data, 'val'), '-j', '0'])
    for name in ('random', 'real'):
        check = report[name]
        assert check['passed'] and check['max_abs_diff'] <= check['tolerance']
        assert check['tolerance'] <= 1e-3 * max(1.0, check['max_abs_logit'])
    with pytest.raises(SystemExit) as stop:
        main(setup.flags + ['--out', str(tmp_path / 'x'), '--format', 'onnx', '--tolerance',
                            '-1'])
    assert stop.value.code == 2
    assert capsys.readouterr().err == 'error: --tolerance must be a number >= 0, not -1\n'


def test_module_and_function_do_not_clash():
    import gluon_atac.export  # noqa: F401 -- importing the CLI must not rebind the name
    assert isinstance(ga.export, types.FunctionType)


@pytest.mark.parametrize('module, flag', [('gluon_atac.export', '--quantize'),
                                          ('gluon_atac.evaluate', '--data')])
def test_python_m_runs_without_warnings(module, flag):
    # runpy warns when `import gluon_atac` has already imported the module it runs.
    result = subprocess.run([sys.executable, '-m', module, '--help'], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert result.returncode == 0
    assert flag in result.stdout and 'Warning' not in result.stderr


def test_deployment_page_example_classifies_an_image(tmp_path, monkeypatch, capsys):
    with open(os.path.join(REPO, 'docs', 'deployment.md')) as handle:
        readme = handle.read()
    code = re.search(r'<!-- tested: classify -->\s*```python\n(.*?)```', readme, re.S).group(1)
    # The files the example expects; an ATAC ResNet-18 stands in for the ResNet-50 (the
    # example's code is under test, and exporting ResNet-50 takes far longer).
    monkeypatch.chdir(tmp_path)
    net = ga.get_model('resnet18_v1b')
    net.initialize(mx.init.MSRAPrelu())
    ga.export(net, 'atac_r50', input_shape=(1, 3, 224, 224))
    image = np.random.RandomState(0).randint(0, 255, size=(300, 400, 3)).astype(np.uint8)
    cv2.imwrite('cat.jpg', image)
    exec(compile(code, 'docs/deployment.md', 'exec'), {})
    assert re.search(r'top-5 classes: \[[\d ]+\]', capsys.readouterr().out)
