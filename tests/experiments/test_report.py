"""Reports: tables and figures whose numbers are the metrics files'."""
import json
import os

import numpy as np
import pytest

import gluon_atac as ga
from gluon_atac.errors import UsageError
from gluon_atac.experiments import build_report, expand
from gluon_atac.experiments.runner import _save_manifest
from gluon_atac.training.engine.metrics import read_metrics


def _best(run):
    return read_metrics(os.path.join(run.dir, 'metrics.jsonl'))[-1]['best_val_acc']


@pytest.fixture(scope='module')
def report(smoke_grid):
    root, runs = smoke_grid[:2]
    return root, runs, build_report(root, log=lambda line: None)


@pytest.mark.slow
def test_table_rows_equal_the_metrics_files(report):
    root, runs, text = report
    with open(os.path.join(root, 'report.md')) as handle:
        assert handle.read() == text
    assert 'CIFAR-10, 2 epoch(s)' in text
    rows = [line for line in text.splitlines() if line.startswith('| ReLU') or
            line.startswith('| ATAC')]
    assert [row.split(' | ')[0] for row in rows] == ['| ReLU', '| ATAC']
    for row, act in zip(rows, ('relu', 'ChaATAC')):
        accs = [_best(r) for r in runs if r.knobs['act_type'] == act]
        cells = row.strip('| ').split(' | ')
        expected = '%.2f ± %.2f' % (100 * np.mean(accs), 100 * np.std(accs, ddof=1))
        net = ga.get_model('cifar_resnet8_v2', act_type=act, classes=10)
        params = ga.count_params(net, (1, 3, 32, 32))['total']
        macs = ga.count_flops(net, (1, 3, 32, 32))['macs']
        assert cells == [cells[0], '8', '2/2', expected, {'relu': '73.70',
                                                           'ChaATAC': '76.40'}[act],
                         '{:,}'.format(params), '%.4g' % (macs / 1e9)]
    assert 'COARSE' in text


@pytest.mark.slow
def test_figure_plots_the_metrics_and_the_paper(report):
    root, runs, text = report
    png = os.path.join(root, 'activations_accuracy.png')
    import matplotlib.image
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 600
    with open(os.path.join(root, 'activations_accuracy.json')) as handle:
        plotted = json.load(handle)
    for act in ('relu', 'ChaATAC'):
        accs = [_best(r) for r in runs if r.knobs['act_type'] == act]
        [[depth, params, mean, std]] = plotted['ours'][act]
        assert (depth, mean, std) == (8, pytest.approx(np.mean(accs)),
                                      pytest.approx(np.std(accs, ddof=1)))
    assert plotted['paper']['relu'] == [[8, .737], [14, .785], [20, .799], [26, .806],
                                        [32, .814]]
    assert len(plotted['paper']['ChaATAC']) == 4
    assert '![activations](activations_accuracy.png)' in text


def test_imagenet_rows_use_top1_error_and_published_params(tmp_path):
    runs = expand('imagenet_attention', str(tmp_path), budget='smoke', only=['*-se-*',
                                                                           '*-atac-*'])
    for run, errs in zip(runs, ([0.9, 0.7], [0.8, 0.75])):
        os.makedirs(run.dir)
        _save_manifest(run, status='finished')
        with open(os.path.join(run.dir, 'metrics.jsonl'), 'w') as handle:
            for epoch, err in enumerate(errs[:run.num_epochs], start=1):
                handle.write(json.dumps({'epoch': epoch, 'val_top1_err': err}) + '\n')
    text = build_report(str(tmp_path), log=lambda line: None)
    rows = [line.strip('| ').split(' | ') for line in text.splitlines()
            if line.startswith('| resnet50_v1b ')]
    assert rows[0][:4] == ['resnet50_v1b', 'ReLU', 'SE', '1/1'] and rows[0][4] == '10.00'
    assert rows[0][-1] == '28.1M' and rows[1][-1] == '28.0M'
    assert rows[1][:6] == ['resnet50_v1b', 'ATAC', '–', '1/1', '20.00', '78.59']


def test_report_of_an_empty_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match='no runs'):
        build_report(str(tmp_path))


@pytest.mark.slow
def test_report_command_prints_the_tables(report, capsys):
    from gluon_atac.commands.experiments import main
    root, _, text = report
    assert main(['report', root]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == text.strip()
    assert 'report.md' in err


def test_aa_and_fa_rows_show_their_papers_columns(tmp_path):
    runs = expand('imagenet_attention', str(tmp_path), budget='smoke',
                  only=['resnet50v1baa-*', 'resnet50v1bfa-*'])
    assert [run.knobs['model'] for run in runs] == ['resnet50_v1b_aa', 'resnet50_v1b_fa']
    for run in runs:
        os.makedirs(run.dir)
        _save_manifest(run, status='finished')
        with open(os.path.join(run.dir, 'metrics.jsonl'), 'w') as handle:
            handle.write(json.dumps({'epoch': 1, 'val_top1_err': 0.5}) + '\n')
    text = build_report(str(tmp_path), log=lambda line: None)
    rows = {line.strip('| ').split(' | ')[0]: line.strip('| ').split(' | ')
            for line in text.splitlines() if line.startswith('| resnet50_v1b_')}
    # model, act, attention, runs, accuracy, paper top-1, params, GMACs, paper params
    assert rows['resnet50_v1b_aa'][5] == '77.70' and rows['resnet50_v1b_aa'][-1] == '25.8M'
    assert rows['resnet50_v1b_fa'][5] == '77.60' and rows['resnet50_v1b_fa'][-1] == '18.0M'
    assert float(rows['resnet50_v1b_fa'][7]) < float(rows['resnet50_v1b_aa'][7])
