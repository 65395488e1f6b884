"""Faults and hostile files: kills, pickles, divergence, a second run, failed writes."""
import errno
import json
import os
import re
import pickle
import signal
import subprocess
import sys
import time
import zipfile

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gluon_atac import get_model
from gluon_atac.training import cifar as train
from gluon_atac.training import imagenet as train_imagenet
from gluon_atac.training.engine import checkpoint
from gluon_atac.training.engine.checkpoint import load_checkpoint
from gluon_atac.training.engine.metrics import read_metrics
from support import write_cifar

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMING = ('seconds', 'samples_per_sec')


@pytest.fixture(scope='module')
def data_dir(tiny_cifar):
    """32 training images: two steps of 16 per epoch."""
    return tiny_cifar('cifar10', 'py', n_train=32, n_test=16)


def _flags(data_dir, save_dir, *extra):
    return ['--dataset', 'cifar10', '--data-dir', data_dir, '--blocks', '1', '--batch-size',
            '16', '--no-progress', '--seed', '3', '--save-dir', str(save_dir)] + list(extra)


def _start(argv, pause=None, script='train_cifar.py'):
    env = dict(os.environ, OMP_NUM_THREADS='1', GLUON_ATAC_OFFLINE='1')
    env.pop('GLUON_ATAC_TEST_PAUSE', None)
    if pause:
        env['GLUON_ATAC_TEST_PAUSE'] = pause
    return subprocess.Popen([sys.executable, os.path.join(ROOT, script)] + argv,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)


def _wait_for(path, proc, timeout=120):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, 'never reached %s' % path
        time.sleep(0.05)


def _saved_epoch(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read('state.json').decode())['state']['epoch']


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def _same_metrics(a, b):
    return _strip(read_metrics(str(a / 'metrics.jsonl'))) == \
        _strip(read_metrics(str(b / 'metrics.jsonl')))


@pytest.mark.slow
def test_killed_anywhere_resumes_to_the_uninterrupted_metrics(data_dir, tmp_path):
    # --deterministic restarts each script under the naive engine (the test starts it
    # without), so two runs, and a run killed three times, agree to the last bit.
    flags = lambda d, *extra: _flags(data_dir, tmp_path / d, '--num-epochs', '3',
                                     '--deterministic', *extra)
    wholes = [_start(flags('whole%d' % i)) for i in range(2)]
    run = tmp_path / 'cut'
    ckpt = str(run / 'checkpoint.ckpt')
    # (pause point, epoch, epoch the checkpoint holds after the kill)
    kills = [('step', 2, 1), ('evaluate', 2, 1), ('checkpoint', 3, 2)]
    resume = []
    for i, (stage, epoch, kept) in enumerate(kills):
        marker = str(tmp_path / ('paused%d' % i))
        proc = _start(flags('cut', *resume), pause='%s:%d:%s' % (stage, epoch, marker))
        _wait_for(marker, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _saved_epoch(ckpt) == kept, stage
        resume = ['--resume-from', ckpt]
    # The write killed inside left its temporary file; the next run removes it.
    assert [f for f in os.listdir(str(run)) if f.endswith('.partial')]
    last = _start(flags('cut', *resume))
    assert last.wait(timeout=300) == 0, last.communicate()
    for whole in wholes:
        assert whole.wait(timeout=300) == 0, whole.communicate()
    assert 'deterministic: MXNet naive engine' in (run / 'train.log').read_text()
    assert [r['epoch'] for r in read_metrics(str(run / 'metrics.jsonl'))] == [1, 2, 3]
    assert _same_metrics(tmp_path / 'whole0', tmp_path / 'whole1')
    assert _same_metrics(tmp_path / 'whole0', run)
    assert _saved_epoch(ckpt) == 3
    assert not [f for f in os.listdir(str(run)) if f.startswith('.')]


def _imagenet_flags(data, save_dir, *extra):
    return ['--data-dir', data, '--model', 'resnet18_v1b', '--classes', '4', '--input-size',
            '32', '--batch-size', '8', '-j', '0', '--no-progress', '--log-interval', '0',
            '--num-epochs', '2', '--save-dir', str(save_dir), '--logging-file',
            str(save_dir / 'train.log')] + list(extra)


def _refused_while_alive(argv, holder, script):
    second = _start(argv, script=script)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and 'Traceback' not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and \
        'in use by the run of process %d' % holder.pid in lines[0], err


@pytest.mark.slow
def test_imagenet_run_killed_in_its_checkpoint_write_resumes_bit_identical(tiny_imagenet,
                                                                          tmp_path):
    flags = lambda d, *extra: _imagenet_flags(tiny_imagenet, tmp_path / d, '--deterministic',
                                              *extra)
    wholes = [_start(flags('whole%d' % i), script='train_imagenet.py') for i in range(2)]
    marker = str(tmp_path / 'paused')
    cut = _start(flags('cut'), pause='checkpoint:2:' + marker, script='train_imagenet.py')
    try:
        _wait_for(marker, cut)
        _refused_while_alive(flags('cut'), cut, 'train_imagenet.py')
    finally:
        os.kill(cut.pid, signal.SIGKILL)
        cut.wait()
    ckpt = str(tmp_path / 'cut' / 'checkpoint.ckpt')
    assert _saved_epoch(ckpt) == 1
    last = _start(flags('cut', '--resume', ckpt), script='train_imagenet.py')
    assert last.wait(timeout=300) == 0, last.communicate()
    for whole in wholes:
        assert whole.wait(timeout=300) == 0, whole.communicate()
    assert [r['epoch'] for r in read_metrics(str(tmp_path / 'cut' / 'metrics.jsonl'))] == [1, 2]
    assert _same_metrics(tmp_path / 'whole0', tmp_path / 'whole1')
    assert _same_metrics(tmp_path / 'whole0', tmp_path / 'cut')
    final = 'imagenet-ResNet18_v1b_ChaATAC-1.params'
    assert (tmp_path / 'whole0' / final).read_bytes() == (tmp_path / 'cut' / final).read_bytes()


def test_imagenet_divergence_names_epoch_step_and_checkpoint(tiny_imagenet, tmp_path, capsys):
    run = tmp_path / 'run'
    train_imagenet.main(_imagenet_flags(tiny_imagenet, run, '--num-epochs', '1'))
    ckpt = run / 'checkpoint.ckpt'
    before = ckpt.read_bytes()
    with pytest.raises(SystemExit) as stop:
        train_imagenet.main(_imagenet_flags(tiny_imagenet, run, '--lr', '1e30', '--resume',
                                            str(ckpt)))
    assert stop.value.code == 3
    err = [l for l in capsys.readouterr().err.splitlines() if l.startswith('error:')]
    assert len(err) == 1 and re.match(
        r'error: training diverged at epoch 2, by step \d+: non-finite (loss|gradient norm) '
        r'at learning rate [0-9.e+]+; last good checkpoint: %s \(epoch 1\)$'
        % re.escape(str(ckpt)), err[0]), err
    assert ckpt.read_bytes() == before
    assert [r['epoch'] for r in read_metrics(str(run / 'metrics.jsonl'))] == [1]


def test_second_live_run_in_the_folder_is_refused(data_dir, tmp_path):
    marker = str(tmp_path / 'paused')
    first = _start(_flags(data_dir, tmp_path / 'run', '--num-epochs', '1'),
                   pause='step:1:%s' % marker)
    try:
        _wait_for(marker, first)
        _refused_while_alive(_flags(data_dir, tmp_path / 'run', '--num-epochs', '1'), first,
                             'train_cifar.py')
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    # The dead run's lock is taken over; it left its model card and (empty) metrics, which a
    # fresh start replaces only when told to.
    assert train.main(_flags(data_dir, tmp_path / 'run', '--num-epochs', '1',
                             '--overwrite'))['epoch'] == 1
    assert not (tmp_path / 'run' / '.run.lock').exists()


class _CreatesFile(object):
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, 'w')


def _fails(capsys, argv, code, expected):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == code
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.startswith('error:')]
    assert len(lines) == 1 and expected in lines[0], err
    return lines[0]


def test_pickled_checkpoint_is_never_loaded(data_dir, tmp_path, capsys):
    target = tmp_path / 'pwned'
    hostile = tmp_path / 'checkpoint.ckpt'
    hostile.write_bytes(pickle.dumps(_CreatesFile(str(target)), protocol=2))
    _fails(capsys, _flags(data_dir, tmp_path / 'run', '--num-epochs', '1', '--resume-from',
                          str(hostile)), 2, 'is not a gluon_atac checkpoint but a pickle')
    assert not target.exists()


def test_pickled_code_in_a_cifar_batch_is_refused(tmp_path, capsys):
    write_cifar(str(tmp_path / 'data'), 'cifar10', 'py', n_train=16, n_test=8)
    batch = tmp_path / 'data' / 'cifar-10-batches-py' / 'data_batch_1'
    target = tmp_path / 'pwned'
    batch.write_bytes(pickle.dumps(_CreatesFile(str(target)), protocol=2))
    _fails(capsys, _flags(str(tmp_path / 'data'), tmp_path / 'run', '--num-epochs', '1'), 2,
           '%s is not an official CIFAR python batch: a reference to io.open' % batch)
    assert not target.exists()


def test_divergence_stops_with_exit_3_and_keeps_the_checkpoint(data_dir, tmp_path, capsys):
    run = tmp_path / 'run'
    train.main(_flags(data_dir, run, '--num-epochs', '1'))
    ckpt = run / 'checkpoint.ckpt'
    before = ckpt.read_bytes()
    line = _fails(capsys, _flags(data_dir, run, '--num-epochs', '2', '--lr', '1e30',
                                 '--resume-from', str(ckpt)), 3,
                  '1e+30; last good checkpoint: %s (epoch 1)' % ckpt)
    assert re.search(r'training diverged at epoch 2, by step \d+: non-finite loss at '
                     r'learning rate 1e\+30', line)
    assert 'Traceback' not in line
    assert ckpt.read_bytes() == before
    assert [r['epoch'] for r in read_metrics(str(run / 'metrics.jsonl'))] == [1]


@pytest.mark.parametrize('name,failing_write', [
    ('checkpoint.ckpt', 2),       # epoch 2's checkpoint
    ('metrics.jsonl', 3),         # the start, epoch 1, then epoch 2's record
    ('-2.params', 1),             # epoch 2's --save-period snapshot
])
def test_failed_write_keeps_the_previous_files(data_dir, tmp_path, capsys, monkeypatch, name,
                                               failing_write):
    real_replace = os.replace
    writes = []

    def replace(src, dst):
        if dst.endswith(name):
            writes.append(dst)
            if len(writes) == failing_write:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)
    monkeypatch.setattr(checkpoint.os, 'replace', replace)
    run = tmp_path / 'run'
    line = _fails(capsys, _flags(data_dir, run, '--num-epochs', '3', '--save-period', '1'),
                  2, 'No space left on device')
    monkeypatch.undo()
    assert line == 'error: cannot write %s: No space left on device (the previous file is ' \
                   'kept)' % writes[-1]
    assert not [f for f in os.listdir(str(run)) if f.startswith('.')]
    assert _saved_epoch(str(run / 'checkpoint.ckpt')) == 1
    epochs = [r['epoch'] for r in read_metrics(str(run / 'metrics.jsonl'))]
    assert epochs == ([1] if name == 'metrics.jsonl' else [1, 2])


def test_states_saved_on_two_devices_resume_on_one_and_three(data_dir, tmp_path):
    run = tmp_path / 'run'
    flags = _flags(data_dir, run, '--model', 'resnet', '--gpus', '0,1')
    train.main(flags + ['--num-epochs', '1'])
    ckpt = str(run / 'checkpoint.ckpt')

    def saved_trainer():
        with zipfile.ZipFile(ckpt) as archive:
            archive.extract('trainer.nd', str(tmp_path))
            meta = json.loads(archive.read('state.json').decode())['trainer']
        return meta, mx.nd.load(str(tmp_path / 'trainer.nd'))
    meta, momenta = saved_trainer()
    # 16 per device on two devices: one step of 32.
    assert meta['num_update'] == 1 and len(momenta) == len(meta['layout']) > 10
    # One device continues the run (two steps of 16).
    resumed = train.main(_flags(data_dir, run, '--model', 'resnet', '--num-epochs', '2',
                                '--resume-from', ckpt))
    assert [r['epoch'] for r in resumed['records']] == [1, 2]
    meta, momenta = saved_trainer()
    assert meta['num_update'] == 3
    # Three devices get every momentum array, and step with them.
    ctx = [mx.cpu(i) for i in range(3)]
    net = get_model('cifar_resnet8_v2', act_type='relu', classes=10)
    net.initialize(mx.init.MSRAPrelu(), ctx=ctx)
    trainer = gluon.Trainer(net.collect_params(), 'nag', {'learning_rate': 0.1,
                                                          'momentum': 0.9})
    load_checkpoint(ckpt, net, trainer, ctx=ctx)
    names = checkpoint._trainer_names(net, trainer)
    updater = checkpoint._updaters(trainer)[0]
    assert {names[i] for i in updater.states} == set(momenta)
    for index, state in updater.states.items():
        np.testing.assert_array_equal(state.asnumpy(), momenta[names[index]].asnumpy())
    assert trainer._optimizer.num_update == 3
    xs = [mx.nd.ones((2, 3, 32, 32), ctx=c) for c in ctx]
    with autograd.record():
        losses = [net(x).sum() for x in xs]
    autograd.backward(losses)
    trainer.step(6)
    assert trainer._optimizer.num_update == 4
