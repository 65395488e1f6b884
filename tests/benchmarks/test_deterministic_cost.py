"""The --deterministic cost benchmark's rounds and report (the training runs it times are
stood in for: each is a full train_cifar.py process, too slow for the suite)."""
import importlib.util
import json
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'benchmarks',
                      'deterministic_cost.py')


def test_rounds_pair_a_default_and_a_deterministic_run(tmp_path, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location('deterministic_cost', SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    speeds = iter([100.0, 40.0, 90.0, 45.0])
    calls = []

    def epoch_speed(flags, save_dir):
        calls.append(flags)
        return next(speeds)
    monkeypatch.setattr(bench, 'epoch_speed', epoch_speed)
    out = tmp_path / 'cost.json'
    bench.main(['--rounds', '2', '--json', str(out), '--', '--data-dir', 'DIR'])
    report = json.loads(out.read_text())
    assert [r['ratio'] for r in report['rounds']] == [0.4, 0.5]
    assert report['median_ratio'] == pytest.approx(0.45)
    assert calls[0] == bench.DEMO_FLAGS + ['--data-dir', 'DIR']
    assert calls[1] == calls[0] + ['--deterministic']
    assert 'median ratio 0.450 (range 0.400-0.500)' in capsys.readouterr().out
