"""The deployment benchmark runs end to end on a tiny configuration (no timing asserted)."""
import json
import os
import runpy

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'benchmarks',
                      'deploy_throughput.py')


def run_tiny(tmp_path, *flags):
    """The JSON report of a tiny ResNet-8 run with ``flags`` added."""
    pytest.importorskip('onnxruntime')
    bench = runpy.run_path(SCRIPT, run_name='deploy_throughput')
    out = tmp_path / 'deploy.json'
    bench['main'](['--model', 'cifar_resnet8_v2', '--batch-size', '2', '--input-size', '8',
                   '--classes', '10', '--warmup', '1', '--windows', '2', '--iters', '1',
                   '--json', str(out)] + list(flags))
    return json.loads(out.read_text())


def test_tiny_run_reports_both_runtimes_and_json(tmp_path, capsys):
    report = run_tiny(tmp_path)
    assert set(report['throughput']) == {'relu', 'chaatac'}
    for row in report['throughput'].values():
        assert row['mxnet_images_per_s'] > 0 and row['onnxruntime_images_per_s'] > 0
        assert row['onnx_over_mxnet'] == pytest.approx(
            row['onnxruntime_images_per_s'] / row['mxnet_images_per_s'])
        assert len(row['windows']['mxnet']) == len(row['windows']['onnxruntime']) == 2
    assert 'ONNX Runtime' in capsys.readouterr().out


def test_mkldnn_and_int8_runtimes_are_timed_against_each_relu_deployment(tmp_path, capsys):
    rows = run_tiny(tmp_path, '--mkldnn', '--int8')['throughput']
    runtimes = ['mxnet', 'mxnet-mkldnn', 'onnxruntime', 'mxnet-int8', 'onnxruntime-int8']
    for row in rows.values():
        assert list(row['windows']) == runtimes
        assert all(len(w) == 2 and min(w) > 0 for w in row['windows'].values())
        assert row['mxnet_mkldnn_images_per_s'] > 0 and row['onnxruntime_int8_images_per_s'] > 0
    # float against float ReLU deployments, INT8 against INT8 ones
    pairs = rows['chaatac']['vs_relu']
    assert 'onnxruntime/mxnet-mkldnn' in pairs and 'onnxruntime-int8/mxnet-int8' in pairs
    assert 'onnxruntime-int8/onnxruntime' not in pairs
    assert pairs['mxnet/mxnet'][0] <= pairs['mxnet/mxnet'][2]
    assert 'mxnet-mkldnn/mxnet-mkldnn' in capsys.readouterr().out
