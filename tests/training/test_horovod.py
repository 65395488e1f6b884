"""``train_imagenet.py --kv-store horovod``: real ``horovodrun --gloo`` jobs on 127.0.0.1.

One two-process job (module fixture) is compared with a one-process run on two CPU
contexts and resumed on one process; another is killed mid-epoch. The ATAC units run the
plain Gluon graph (``GLUON_ATAC_FUSED=0``) in both, the graph a GPU runs.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import mxnet as mx
import numpy as np
import pytest

from gluon_atac.data.imagenet import device_slice
from support import processes_with

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(REPO, 'train_imagenet.py')
# 24 training images, 4 per device: 3 steps of a global batch of 8 per epoch. The
# learning rate drops after epoch 2, which only the resumed run reaches.
RUN = ['--model', 'resnet18_v1b', '--classes', '4', '--input-size', '32', '--batch-size',
       '4', '--lr', '0.05', '--lr-decay-epoch', '2', '-j', '0', '--no-progress',
       '--log-interval', '1']
pytestmark = pytest.mark.slow


def _env():
    return dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1', GLUON_ATAC_FUSED='0')


def _horovod(horovodrun, processes, args, **kwargs):
    """``horovodrun -np N -H localhost:N --gloo python train_imagenet.py --kv-store horovod``."""
    command = [horovodrun, '-np', str(processes), '-H', 'localhost:%d' % processes, '--gloo',
               sys.executable, TRAIN, '--kv-store', 'horovod'] + RUN + args
    return subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True, **kwargs)


def _finish(process, timeout=600):
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    return out


def _records(save):
    with open(os.path.join(save, 'metrics.jsonl')) as handle:
        return [json.loads(line) for line in handle]


def _close(a, b):
    # Float32 rounding of other summation orders, grown over 6 steps, relative to the
    # array's scale: two runs of the same one-process command differ by up to about 1e-4
    # here (oneDNN), a run that dropped a device's first BatchNorm update by 1e-2 to 0.25.
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1e-30)
    return np.abs(a - b).max() <= 1e-3 * scale


@pytest.fixture(scope='module')
def runs(tmp_path_factory, tiny_imagenet, horovodrun):
    """A two-process Horovod job and a one-process run on two devices, 2 epochs each."""
    root = tmp_path_factory.mktemp('horovod')
    common = ['--data-dir', tiny_imagenet, '--num-epochs', '2']
    job = _horovod(horovodrun, 2, common + ['--save-dir', str(root / 'hvd'), '--worker-report',
                                            str(root / 'hvd-report')])
    job_out = _finish(job)
    single = subprocess.run([sys.executable, TRAIN, '--kv-store', 'device', '--gpus', '0,1'] +
                            RUN + common + ['--save-dir', str(root / 'one'),
                                            '--worker-report', str(root / 'one-report')],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=600)
    assert single.returncode == 0, single.stdout
    return {'root': root, 'out': job_out, 'horovodrun': horovodrun, 'data': tiny_imagenet}


def _report(directory, rank):
    with open(os.path.join(directory, 'rank%d.json' % rank)) as handle:
        report = json.load(handle)
    return report, mx.nd.load(os.path.join(directory, 'rank%d.params' % rank))


def test_two_processes_train_as_one_process_on_two_devices(runs):
    root = runs['root']
    assert runs['out'].count('this worker is rank') == 2
    # Every rank logs the job's validation score, the same number.
    for epoch in (1, 2):
        lines = [line.split('[Epoch %d]' % epoch)[1] for line in runs['out'].splitlines()
                 if '[Epoch %d] train loss' % epoch in line]
        assert len(lines) == 2
        assert len({line.split('|')[1] for line in lines}) == 1, lines
    # Rank r read, batch by batch, the slice device r of the one-process run read.
    one, _ = _report(str(root / 'one-report'), 0)
    batches = [one['images_read'][i:i + 8] for i in range(0, 24, 8)]
    for rank in (0, 1):
        report, _ = _report(str(root / 'hvd-report'), rank)
        assert report['kv_store'] == 'horovod' and report['num_workers'] == 2
        assert report['images_read'] == [i for b in batches for i in device_slice(b, (rank, 2))]
    # Epoch by epoch the same metrics, and the same weights at the end.
    hvd, single = _records(str(root / 'hvd')), _records(str(root / 'one'))
    assert [r['epoch'] for r in hvd] == [r['epoch'] for r in single] == [1, 2]
    for a, b in zip(hvd, single):
        assert a['lr'] == b['lr'] == 0.05
        assert a['train_loss'] == pytest.approx(b['train_loss'], rel=1e-4)
        # Counts of hits out of 24 (8) images: a float32 difference cannot move them.
        for key in ('train_top1_err', 'val_top1_err', 'val_top5_err'):
            assert a[key] == b[key], key
    name = 'imagenet-ResNet18_v1b_ChaATAC-1.params'
    trained = [mx.nd.load(str(root / run / name)) for run in ('hvd', 'one')]
    assert set(trained[0]) == set(trained[1]) and len(trained[0]) > 50
    assert [k for k in trained[0]
            if not _close(trained[0][k].asnumpy(), trained[1][k].asnumpy())] == []


def test_both_ranks_end_with_identical_weights(runs):
    reports = [_report(str(runs['root'] / 'hvd-report'), rank)[1] for rank in (0, 1)]
    assert set(reports[0]) == set(reports[1])
    # Trainable weights and (averaged each epoch) BatchNorm statistics alike.
    assert [k for k in reports[0]
            if not np.array_equal(reports[0][k].asnumpy(), reports[1][k].asnumpy())] == []
    # Only rank 0 wrote files.
    save = runs['root'] / 'hvd'
    assert len(_records(str(save))) == 2 and (save / 'model.json').exists()
    assert (save / 'checkpoint.ckpt').exists() and not (save / '.run.lock').exists()


def test_resume_on_one_process_continues_the_schedule(runs, tmp_path):
    save = tmp_path / 'save'
    shutil.copytree(str(runs['root'] / 'hvd'), str(save))
    out = _finish(_horovod(runs['horovodrun'], 1, [
        '--data-dir', runs['data'], '--num-epochs', '3', '--save-dir', str(save),
        '--resume', str(save / 'checkpoint.ckpt')]))
    assert 'resumed' in out and 'Epoch[1]' not in out and 'Epoch[2]' not in out
    # One process of 4 images a step: 6 steps in epoch 3, at the decayed rate.
    steps = [line for line in out.splitlines() if 'Epoch[3] Batch[' in line]
    assert len(steps) == 6 and all(line.endswith('lr 0.005000') for line in steps), out
    records = _records(str(save))
    assert [r['epoch'] for r in records] == [1, 2, 3]
    assert records[2]['lr'] == pytest.approx(0.05 * 0.1)


def _rank_of(pid):
    try:
        with open('/proc/%d/environ' % pid, 'rb') as handle:
            env = dict(v.split(b'=', 1) for v in handle.read().split(b'\0') if b'=' in v)
    except OSError:
        return None
    return env.get(b'HOROVOD_RANK')


def test_a_rank_killed_mid_epoch_stops_the_job(tiny_imagenet, horovodrun, tmp_path):
    # The save directory's unique name marks every process of the job.
    save = tmp_path / ('killed-%s' % uuid.uuid4().hex)
    job = _horovod(horovodrun, 2, ['--data-dir', tiny_imagenet, '--num-epochs', '100',
                                   '--save-dir', str(save)], start_new_session=True)
    lines = []
    try:
        # Mid-epoch: rank 1 has logged a step of epoch 2.
        for line in job.stdout:
            lines.append(line)
            if 'Epoch[2] Batch[1]' in line and line.startswith('[1]'):
                break
        victims = [p for p in processes_with(str(save)) if _rank_of(p) == b'1'
                   and 'python' in os.path.basename(os.readlink('/proc/%d/exe' % p))]
        assert len(victims) == 1, ''.join(lines)
        os.kill(victims[0], signal.SIGKILL)
        killed = time.time()
        lines.extend(job.stdout)
        job.wait(timeout=60)
        stopped = time.time() - killed
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        leftover = processes_with(str(save))
        for pid in leftover:
            os.kill(pid, signal.SIGKILL)
    assert job.returncode != 0, ''.join(lines)
    print('job exited %d, %.1f s after the kill' % (job.returncode, stopped))
    assert stopped < 60
    assert leftover == [], ''.join(lines)


def test_the_native_gate_loads_in_a_horovod_job(horovodrun):
    # Once horovod.mxnet is imported, mx.library.load kills the process with SIGFPE, and
    # ATAC units load the gate's library on first use: the Horovod kvstore loads it first.
    # In a child, so that a crash cannot take this worker with it.
    code = ("import mxnet as mx\n"
            "import gluon_atac as ga\n"
            "from gluon_atac import ops\n"
            "from gluon_atac.training.engine.distributed import create_kvstore\n"
            "kv = create_kvstore('horovod')\n"
            "net = ga.get_model('cifar_resnet8_v2', act_type='chaatac')\n"
            "net.initialize()\n"
            "print(kv.type, ops.load() is not None, net(mx.nd.ones((2, 3, 32, 32))).shape)\n")
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    env.pop('GLUON_ATAC_FUSED', None)
    proc = subprocess.run([sys.executable, '-c', code], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from gluon_atac import ops
    assert proc.stdout.split()[:2] == ['horovod', str(ops.load() is not None)]
    assert proc.stdout.strip().endswith('(2, 10)')
