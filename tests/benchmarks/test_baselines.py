"""The baselines benchmark runs end to end on a tiny configuration (no timing asserted)."""
import json
import os
import runpy

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'benchmarks',
                      'baselines.py')


@pytest.mark.slow
def test_tiny_run_reports_speed_memory_counts_and_table(tmp_path, capsys):
    bench = runpy.run_path(SCRIPT, run_name='baselines')
    out = tmp_path / 'bench.json'
    bench['main'](['--networks', 'resnet50,fa', '--batch-size', '2', '--input-size', '32',
                   '--classes', '10', '--windows', '2', '--json', str(out)])
    report = json.loads(out.read_text())
    for mode in ('infer', 'train'):
        rows = report['throughput'][mode]
        assert set(rows) == {'resnet50', 'fa'}
        assert all(row['images_per_s'] > 0 and len(row['windows_images_per_s']) == 2
                   for row in rows.values())
    # Peak memory of training, from a fresh process per network, above the weights alone.
    for label in ('resnet50', 'fa'):
        weights_mb = 4 * report['counts'][label]['total'] / 2 ** 20
        assert report['train_peak_rss_mb'][label] > weights_mb
    assert report['counts']['fa']['trainable'] < report['counts']['resnet50']['trainable']
    table = capsys.readouterr().out
    assert '| fa |' in table and 'batch 2, 32x32' in table


def test_unknown_network_is_refused():
    bench = runpy.run_path(SCRIPT, run_name='baselines')
    with pytest.raises(SystemExit):
        bench['parse_args'](['--networks', 'resnet50,vit'])
