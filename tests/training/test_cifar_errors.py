"""Bad input ends train_cifar.py with exit code 2 and one ``error:`` line; atomic saves."""
import os
import subprocess
import sys

import mxnet as mx
import pytest
from mxnet import gluon

from gluon_atac import get_model
from gluon_atac.training.cifar import main, parse_args
from gluon_atac.training.engine import checkpoint
from gluon_atac.training.engine.checkpoint import load_checkpoint, save_checkpoint
from support import write_cifar

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('GLUON_ATAC_OFFLINE', '1')
    write_cifar(str(tmp_path / 'data'), 'cifar100', 'bin', n_train=16, n_test=8)
    return str(tmp_path / 'data')


def _fails(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ['--no-progress', '--num-epochs', '1', '--blocks', '1'])
    assert exit_info.value.code == 2
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith('error:')]
    assert len(lines) == 1 and expected in lines[0], lines


def test_missing_dir(capsys, tmp_path, data_dir):
    _fails(capsys, ['--dataset', 'cifar10', '--data-dir', str(tmp_path / 'none'),
                    '--save-dir', str(tmp_path / 'run')],
           'no cifar10 files found: looked for cifar-10-batches-bin/')


def test_truncated_file(capsys, tmp_path, data_dir):
    path = os.path.join(data_dir, 'cifar-100-binary', 'test.bin')
    with open(path, 'r+b') as handle:
        handle.truncate(1000)
    _fails(capsys, ['--dataset', 'cifar100', '--data-dir', data_dir,
                    '--save-dir', str(tmp_path / 'run')], path + ' is truncated or malformed')


@pytest.mark.parametrize('argv,expected', [
    (['--act-type', 'foo'], "unknown act type 'foo'"),
    (['--gpus', 'zero'], '--gpus must be comma-separated GPU ids'),
    (['--gpus', '0,0'], '--gpus lists a GPU twice'),
    (['--batch-size', 'x'], "invalid int value: 'x'"),
    (['--lr-decay-epoch', '3,a'], '--lr-decay-epoch must be comma-separated integers'),
    (['--model', 'vgg'], "--model must be 'atac', 'resnet'"),
    (['--dataset', 'cifar10', '--coarse-labels'], '--coarse-labels applies to'),
    (['--eval-only'], '--eval-only needs --resume-from'),
    (['--resume-from', 'nope.ckpt'], '--resume-from file not found: nope.ckpt'),
])
def test_bad_arguments(capsys, tmp_path, data_dir, argv, expected):
    base = ['--dataset', 'cifar100', '--data-dir', data_dir, '--save-dir', str(tmp_path)]
    _fails(capsys, base + argv, expected)


def test_corrupt_checkpoint(capsys, tmp_path, data_dir):
    net = get_model('cifar_resnet8_v2', act_type='relu')
    net.initialize(mx.init.MSRAPrelu())
    bad = tmp_path / 'checkpoint.ckpt'
    save_checkpoint(str(bad), net, None, {'epoch': 1})
    bad.write_bytes(bad.read_bytes()[:-100])
    _fails(capsys, ['--dataset', 'cifar100', '--data-dir', data_dir, '--resume-from',
                    str(bad), '--save-dir', str(tmp_path / 'run')], 'truncated or corrupt')


@pytest.mark.parametrize('argv,expected', [
    (['--data-dir', '/nonexistent/cifar'], 'error: no cifar100 files found'),
    (['--act-type', 'NoSuchAct'], "error: unknown act type 'NoSuchAct'"),
])
def test_subprocess_one_line_no_traceback(tmp_path, argv, expected):
    env = dict(os.environ, OMP_NUM_THREADS='1', GLUON_ATAC_OFFLINE='1')
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'train_cifar.py'),
                           '--dataset', 'cifar100', '--save-dir', str(tmp_path)] + argv,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
    assert len(errors) == 1 and errors[0].startswith(expected), proc.stderr


def test_published_command_parses():
    args = parse_args(('--gpus 0 --num-epochs 400 --mode hybrid -j 32 --batch-size 128 '
                       '--wd 0.0001 --lr 0.2 --lr-decay 0.1 --lr-decay-epoch 300,350 '
                       '--dataset cifar100 --model atac --act-type ChaATAC --useReLU --r 2 '
                       '--blocks 3').split())
    assert (args.zoo_name, args.act_type, args.r, args.useReLU, args.useGlobal) == \
        ('cifar_resnet20_v2', 'ChaATAC', 2, True, False)
    assert (args.num_epochs, args.batch_size, args.num_workers, args.mode) == \
        (400, 128, 32, 'hybrid')
    assert (args.lr, args.wd, args.lr_decay, args.decay_epochs) == \
        (0.2, 0.0001, 0.1, [300, 350])
    assert not args.coarse_labels
    assert parse_args(['--model', 'resnet', '--blocks', '2']).act_type == 'relu'
    assert parse_args(['--lr-decay-period', '30', '--num-epochs', '100']).decay_epochs == \
        [30, 60, 90]


def test_crash_while_writing_keeps_previous_checkpoint(tmp_path, monkeypatch):
    net = get_model('cifar_resnet8_v2', act_type='relu')
    net.initialize(mx.init.MSRAPrelu())
    trainer = gluon.Trainer(net.collect_params(), 'nag', {'learning_rate': 0.1})
    path = str(tmp_path / 'checkpoint.ckpt')
    save_checkpoint(path, net, trainer, {'epoch': 1})
    before = open(path, 'rb').read()

    real_write = checkpoint.zipfile.ZipFile.write

    def write_then_die(archive, *args, **kwargs):
        real_write(archive, *args, **kwargs)
        raise KeyboardInterrupt('killed while writing')

    monkeypatch.setattr(checkpoint.zipfile.ZipFile, 'write', write_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, net, trainer, {'epoch': 2})
    monkeypatch.undo()
    assert open(path, 'rb').read() == before
    assert os.listdir(str(tmp_path)) == ['checkpoint.ckpt']
    assert load_checkpoint(path, net, trainer)['epoch'] == 1
