"""The --deterministic cost benchmark runs end to end on a tiny CIFAR set (no timing
asserted)."""
import json
import os
import runpy

import pytest

from gluon_atac.data import write_cifar

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'benchmarks',
                      'deterministic_cost.py')


def test_one_round_reports_both_speeds_and_their_ratio(tmp_path, capsys):
    write_cifar(str(tmp_path / 'data'), 'cifar10', 'py', n_train=32, n_test=16)
    bench = runpy.run_path(SCRIPT, run_name='deterministic_cost')
    out = tmp_path / 'cost.json'
    bench['main'](['--rounds', '1', '--json', str(out), '--', '--dataset', 'cifar10',
                   '--data-dir', str(tmp_path / 'data'), '--blocks', '1', '--batch-size',
                   '16', '-j', '0', '--mode', 'imperative'])
    report = json.loads(out.read_text())
    (row,) = report['rounds']
    assert row['default'] > 0 and row['deterministic'] > 0
    assert row['ratio'] == pytest.approx(row['deterministic'] / row['default'])
    assert report['median_ratio'] == row['ratio']
    assert report['flags'][-2:] == ['--mode', 'imperative']
    assert 'median ratio' in capsys.readouterr().out
