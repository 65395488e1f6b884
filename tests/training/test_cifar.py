"""train_cifar.py end to end on tiny generated CIFAR files: outputs, resume, evaluation."""
import json
import os
import subprocess
import sys

import pytest

from gluon_atac.training.cifar import main
from gluon_atac.training.engine.metrics import read_metrics
from gluon_atac.training.engine.schedule import step_lr

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = {'epoch', 'train_acc', 'train_loss', 'val_acc', 'best_val_acc', 'lr', 'seconds',
        'samples_per_sec'}
# Run-to-run quantities; everything else must repeat.
TIMING = ('seconds', 'samples_per_sec')
PUBLISHED = ('--gpus 0 --num-epochs 400 --mode hybrid -j 32 --batch-size 128 --wd 0.0001 '
             '--lr 0.2 --lr-decay 0.1 --lr-decay-epoch 300,350 --dataset cifar100 '
             '--model atac --act-type ChaATAC --useReLU --r 2 --blocks 3').split()


@pytest.fixture(scope='module')
def data_dirs(tiny_cifar):
    """Tiny CIFAR-10/100 sets (64 train, 32 test) in both official layouts."""
    return {(dataset, layout): tiny_cifar(dataset, layout)
            for dataset in ('cifar10', 'cifar100') for layout in ('bin', 'py')}


def _train(save_dir, data_dir, *extra, dataset='cifar10'):
    argv = ['--dataset', dataset, '--data-dir', data_dir, '--blocks', '1', '--batch-size',
            '16', '--no-progress', '--save-dir', str(save_dir)] + list(extra)
    return main(argv)


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def _assert_same(first, second, tol):
    assert len(first) == len(second)
    for a, b in zip(_strip(first), _strip(second)):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=tol), key


@pytest.mark.parametrize('dataset,layout,act,extra', [
    ('cifar10', 'bin', 'relu', []),
    ('cifar10', 'py', 'ChaATAC', ['--mode', 'hybrid']),
    ('cifar100', 'bin', 'atac', ['--coarse-labels', '--useReLU']),
    ('cifar100', 'py', 'relu', ['--gpus', '0,1', '-j', '2']),
])
def test_one_epoch_through_real_loaders(tmp_path, data_dirs, dataset, layout, act, extra):
    result = _train(tmp_path, data_dirs[dataset, layout], '--act-type', act,
                    '--num-epochs', '1', *extra, dataset=dataset)
    records = read_metrics(str(tmp_path / 'metrics.jsonl'))
    assert len(records) == 1 and set(records[0]) >= KEYS and records[0]['epoch'] == 1
    assert records[0]['best_val_acc'] == result['best_val_acc'] == records[0]['val_acc']
    for name in ('best.params', 'checkpoint.ckpt', 'history.png', 'train.log'):
        assert (tmp_path / name).is_file(), name
    assert os.path.basename(result['best_file']).endswith('-1-best.params')
    log = (tmp_path / 'train.log').read_text()
    if '--coarse-labels' in extra:
        assert '20 CIFAR-100 superclasses' in log and "published 'CIFAR-100' figure" in log
    if '--gpus' in extra:
        assert 'no GPU' in log


def test_resume_equals_uninterrupted_run(tmp_path, data_dirs):
    data_dir = data_dirs['cifar100', 'py']
    common = ['--act-type', 'ChaATAC', '--useReLU', '--lr-decay-epoch', '2', '--seed', '5']
    whole = _train(tmp_path / 'whole', data_dir, '--num-epochs', '3', *common,
                   dataset='cifar100')
    # Stopped after epoch 1 (with -j 2 here: the data workers must not change results).
    first = _train(tmp_path / 'split', data_dir, '--num-epochs', '1', '-j', '2', *common,
                   dataset='cifar100')
    _assert_same(whole['records'][:1], first['records'], 1e-6)
    resumed = _train(tmp_path / 'split', data_dir, '--num-epochs', '3', *common,
                     '--resume-from', str(tmp_path / 'split' / 'checkpoint.ckpt'),
                     dataset='cifar100')
    _assert_same(whole['records'], resumed['records'], 1e-4)
    _assert_same(whole['records'], read_metrics(str(tmp_path / 'split' / 'metrics.jsonl')),
                 1e-4)
    best = [r['best_val_acc'] for r in whole['records']]
    assert best == sorted(best) and best[-1] == max(r['val_acc'] for r in whole['records'])
    assert [r['lr'] for r in whole['records']] == pytest.approx([0.1, 0.1, 0.01])
    # Evaluating the saved best model gives the reported best accuracy.
    evaluated = _train(tmp_path / 'eval', data_dir, '--eval-only', '--resume-from',
                       str(tmp_path / 'whole' / 'best.params'), *common, dataset='cifar100')
    assert evaluated['val_acc'] == pytest.approx(whole['best_val_acc'], abs=1e-6)


def test_params_file_resumes_weights_only(tmp_path, data_dirs):
    data_dir = data_dirs['cifar10', 'bin']
    _train(tmp_path / 'a', data_dir, '--num-epochs', '1', '--act-type', 'relu')
    result = _train(tmp_path / 'b', data_dir, '--num-epochs', '1', '--act-type', 'relu',
                    '--resume-from', str(tmp_path / 'a' / 'best.params'))
    assert result['epoch'] == 1
    assert 'loaded the weights only' in (tmp_path / 'b' / 'train.log').read_text()


def test_lr_schedule_as_original():
    assert [step_lr(e, 0.2, 0.1, [300, 350]) for e in (0, 299, 300, 349, 350, 399)] == \
        pytest.approx([0.2, 0.2, 0.02, 0.02, 0.002, 0.002])


def test_published_command_runs_one_short_epoch(tmp_path, data_dirs):
    """The paper's command line verbatim, plus overrides (argparse keeps the last value)."""
    save_dir = tmp_path / 'published'
    cmd = [sys.executable, os.path.join(ROOT, 'train_cifar.py')] + PUBLISHED + [
        '--num-epochs', '1', '--batch-size', '16', '--data-dir', data_dirs['cifar100', 'bin'],
        '--save-dir', str(save_dir), '--no-progress']
    env = dict(os.environ, OMP_NUM_THREADS='1', GLUON_ATAC_OFFLINE='1')
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count('MXNet sees no GPU') == 1
    log = (save_dir / 'train.log').read_text()
    assert 'cifar_resnet20_v2 act=ChaATAC r=2 useReLU=True' in log
    assert '316160 params' in log
    records = [json.loads(line) for line in open(str(save_dir / 'metrics.jsonl'))]
    assert [r['epoch'] for r in records] == [1] and records[0]['lr'] == pytest.approx(0.2)


def test_the_trained_model_evaluates_without_architecture_flags(tmp_path, data_dirs):
    # The original's --useReLU is off unless given; the model card carries that to the
    # evaluate command, whose own default is the inner ReLU.
    from gluon_atac.commands.evaluate import main as evaluate_main
    result = _train(tmp_path, data_dirs['cifar10', 'bin'], '--act-type', 'atac',
                    '--num-epochs', '1')
    card = json.loads((tmp_path / 'model.json').read_text())
    assert card['model'] == 'cifar_resnet8_v2' and card['classes'] == 10
    assert card['options']['use_relu'] is False and card['options']['act_type'] == 'atac'
    evaluated = evaluate_main(['--params', str(tmp_path / 'best.params'), '--dataset',
                               'cifar10', '--data', data_dirs['cifar10', 'bin'], '-j', '0'])
    assert 1 - evaluated['top1_err'] == pytest.approx(result['best_val_acc'], abs=1e-9)
