"""A finished run is never overwritten by accident: a fresh start over its files is refused
in one line, and a refused run (a resume that does not fit) writes nothing."""
import os

import pytest

from gluon_atac.training import cifar as train
from gluon_atac.training import imagenet as train_imagenet
from gluon_atac.training.engine.metrics import read_metrics

FILES = ('metrics.jsonl', 'checkpoint.ckpt', 'best.params', 'model.json', 'train.log')


@pytest.fixture(scope='module')
def finished(tiny_cifar, tmp_path_factory):
    """Flags, folder and file contents of a finished one-epoch run."""
    run = tmp_path_factory.mktemp('finished')
    flags = ['--dataset', 'cifar10', '--data-dir', tiny_cifar('cifar10', 'py', 32, 16),
             '--blocks', '1', '--batch-size', '16', '--no-progress', '--num-epochs', '1',
             '--save-dir', str(run)]
    assert train.main(flags)['epoch'] == 1
    return flags, run, _contents(run)


def _contents(folder):
    return {name: (folder / name).read_bytes() for name in FILES}


def _refused(capsys, main, argv):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len([l for l in lines if l.startswith('error:')]) == 1, lines
    return lines[-1]


def test_rerunning_a_finished_command_is_refused_and_changes_nothing(finished, capsys):
    flags, run, before = finished
    assert _refused(capsys, train.main, flags) == (
        'error: %s holds the files of another run (metrics.jsonl, checkpoint.ckpt, '
        'best.params, model.json): resume it (--resume-from %s), choose another --save-dir, '
        'or pass --overwrite to replace them' % (run, run / 'checkpoint.ckpt'))
    # A weights-only .params starts at epoch 1 as well: a fresh start too.
    _refused(capsys, train.main, flags + ['--resume-from', str(run / 'best.params')])
    assert _contents(run) == before
    assert [r['epoch'] for r in read_metrics(str(run / 'metrics.jsonl'))] == [1]


def test_a_resume_that_does_not_fit_writes_nothing(finished, capsys):
    flags, run, before = finished
    line = _refused(capsys, train.main, flags + ['--useReLU', '--num-epochs', '2',
                                                 '--resume-from', str(run / 'checkpoint.ckpt')])
    assert line.startswith('error: %s does not fit ' % (run / 'checkpoint.ckpt'))
    # The card still describes the run's own weights, and no log line was added.
    assert _contents(run) == before


def test_overwrite_starts_afresh_and_resume_continues(finished, tmp_path):
    flags, run, before = finished
    copy = tmp_path / 'copy'
    copy.mkdir()
    for name, content in before.items():
        (copy / name).write_bytes(content)
    flags = flags[:-1] + [str(copy)]
    resumed = train.main(flags + ['--num-epochs', '2', '--resume-from',
                                  str(copy / 'checkpoint.ckpt')])
    assert [r['epoch'] for r in resumed['records']] == [1, 2]
    again = train.main(flags + ['--overwrite'])
    assert [r['epoch'] for r in again['records']] == [1]
    assert [r['epoch'] for r in read_metrics(str(copy / 'metrics.jsonl'))] == [1]


def test_train_imagenet_refuses_a_fresh_start_over_a_model_card(tiny_imagenet, tmp_path,
                                                                 capsys):
    (tmp_path / 'model.json').write_text('kept\n')
    line = _refused(capsys, train_imagenet.main, [
        '--data-dir', tiny_imagenet, '--model', 'resnet18_v1b', '--classes', '4',
        '--input-size', '32', '--num-epochs', '1', '--no-progress',
        '--save-dir', str(tmp_path)])
    assert line == ('error: %s holds the files of another run (model.json): choose another '
                    '--save-dir, or pass --overwrite to replace them' % tmp_path)
    assert sorted(os.listdir(str(tmp_path))) == ['model.json']
    assert (tmp_path / 'model.json').read_text() == 'kept\n'
