"""The INT8 agreement benchmark runs end to end on a tiny configuration: digits written as
PNG class folders, a short training, and the project's own INT8 ONNX export scoring them."""
import json
import os
import runpy

import cv2
import pytest

pytest.importorskip('onnxruntime')
SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'benchmarks',
                      'int8_onnx_digits.py')


def test_tiny_run_trains_exports_and_reports_int8_agreement(tmp_path, capsys):
    out = tmp_path / 'run'
    runpy.run_path(SCRIPT, run_name='int8_onnx_digits')['main'](
        ['--model', 'cifar_resnet8_v2', '--train-images', '64', '--test-images', '50',
         '--batch-size', '16', '--calib-batches', '1', '--max-drop', '1', '--out', str(out)])
    # the held-out digits as a user's class folders: one folder per label, 28x28 PNGs
    folders = sorted(os.listdir(out / 'test'))
    assert set(folders) <= {str(d) for d in range(10)} and len(folders) >= 5
    files = [os.path.join(out, 'test', d, f) for d in folders
             for f in os.listdir(out / 'test' / d)]
    assert len(files) == 50 and cv2.imread(files[0], cv2.IMREAD_UNCHANGED).shape == (28, 28)
    report = json.loads((out / 'net-report.json').read_text())['int8']
    # every held-out digit is scored, the short last batch (2 of 16) included; whole
    # batches calibrate
    assert report['images'] == 50 and report['calibration_images'] == 16
    assert 0 <= report['top1_agreement'] <= 1 and report['speedup'] > 0
    assert os.path.isfile(report['onnx'])
    printed = capsys.readouterr().out
    assert 'trained on 64 digits for 1 epochs' in printed and '"top1_agreement"' in printed
