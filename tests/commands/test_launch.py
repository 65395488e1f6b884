"""gluon_atac.launch: a parameter-server job on 127.0.0.1, and clean failure."""
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import mxnet as mx
import numpy as np
import pytest

from gluon_atac.data.imagenet import write_synthetic_imagenet
from gluon_atac.commands.launch import Job, free_port, main, plan_processes, read_hosts, ssh_argv
from support import processes_with

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env():
    return dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')


def _launch(args, cwd, timeout=240):
    return subprocess.run([sys.executable, '-m', 'gluon_atac.launch'] + args, cwd=cwd,
                          env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout, universal_newlines=True)


def test_plan_sets_the_dmlc_environment_on_loopback():
    plan = plan_processes(2, 1, 9123)
    assert [label for label, _, _ in plan] == ['scheduler', 'server 0', 'worker 0',
                                               'worker 1']
    for label, host, env in plan:
        assert host == '127.0.0.1'
        assert env['DMLC_ROLE'] == label.split()[0]
        assert env['DMLC_PS_ROOT_URI'] == env['DMLC_NODE_HOST'] == '127.0.0.1'
        assert (env['DMLC_PS_ROOT_PORT'], env['DMLC_NUM_SERVER'],
                env['DMLC_NUM_WORKER'], env['DMLC_INTERFACE']) == ('9123', '1', '2', 'lo')


def test_hosts_file_spreads_roles_over_ssh(tmp_path):
    hosts = tmp_path / 'hosts'
    hosts.write_text('node-a  # first\n\nnode-b\n')
    names = read_hosts(str(hosts))
    plan = plan_processes(2, 2, 9000, names)
    assert [host for _, host, _ in plan] == ['node-a', 'node-a', 'node-b', 'node-a', 'node-b']
    assert all('DMLC_INTERFACE' not in env for _, _, env in plan)
    argv = ssh_argv('node-b', plan[2][2], ['python', 'train imagenet.py'], '/data/run')
    assert argv[:5] == ['ssh', '-tt', '-o', 'BatchMode=yes', 'node-b']
    assert argv[5].startswith("cd /data/run && env ")
    assert 'DMLC_ROLE=server' in argv[5] and "'train imagenet.py'" in argv[5]


def test_command_is_required(capsys):
    with pytest.raises(SystemExit) as stop:
        main(['-n', '2'])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith('error: give the command after --')


def test_a_command_that_cannot_start_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(['-n', '1', '-s', '1', '--', str(tmp_path / 'absent-command')])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith('error: [Errno 2] No such file')


def _two_worker_run(directory, data):
    report = directory / 'report'
    result = _launch(['-n', '2', '-s', '1', '--', sys.executable,
                      os.path.join(REPO, 'train_imagenet.py'), '--kv-store', 'dist_sync',
                      '--model', 'resnet18_v1b', '--classes', '4', '--input-size', '32',
                      '--batch-size', '4', '--num-epochs', '1', '--data-dir', data,
                      '--save-dir', str(directory / 'save'), '--logging-file',
                      str(directory / 'save' / 'train.log'), '-j', '0', '--no-progress',
                      '--worker-report', str(report)], cwd=str(directory.parent))
    assert result.returncode == 0, result.stdout
    assert '[worker 0] ' in result.stdout and '[worker 1] ' in result.stdout
    assert result.stdout.count('this worker is rank') == 2
    reports = [json.loads((report / ('rank%d.json' % r)).read_text()) for r in (0, 1)]
    params = [mx.nd.load(str(report / ('rank%d.params' % r))) for r in (0, 1)]
    return reports, params


def test_two_workers_train_in_sync_on_disjoint_shards(tmp_path):
    data = write_synthetic_imagenet(str(tmp_path / 'data'), classes=4, train_per_class=4,
                                    val_per_class=1, size=40)
    run = tmp_path / 'run'
    run.mkdir()
    reports, params = _two_worker_run(run, data)
    assert [r['num_workers'] for r in reports] == [2, 2]
    shards = [set(r['images_read']) for r in reports]
    assert not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(range(16))
    # Trainable weights are synchronized; BN running statistics are per worker.
    trainable = [n for n in params[0] if 'running_' not in n]
    assert len(trainable) > 50
    assert [n for n in trainable
            if not np.array_equal(params[0][n].asnumpy(), params[1][n].asnumpy())] == []
    # Only rank 0 writes checkpoints and the log.
    assert (run / 'save' / 'checkpoint.ckpt').exists()
    assert open(run / 'save' / 'metrics.jsonl').read().count('\n') == 1


def test_dist_async_on_record_files_updates_on_the_servers(tmp_path):
    data = write_synthetic_imagenet(str(tmp_path / 'data'), classes=4, train_per_class=4,
                                    val_per_class=1, size=40)
    save = tmp_path / 'save'
    rec = ['--use-rec'] + [a for s in ('train', 'val') for a in (
        '--rec-%s' % s, os.path.join(data, s + '.rec'),
        '--rec-%s-idx' % s, os.path.join(data, s + '.idx'))]
    result = _launch(['-n', '2', '-s', '1', '--', sys.executable,
                      os.path.join(REPO, 'train_imagenet.py'), '--kv-store', 'dist_async',
                      '--model', 'resnet18_v1b', '--classes', '4', '--input-size', '32',
                      '--batch-size', '4', '--num-epochs', '1', '--lr-mode', 'cosine',
                      '--save-dir', str(save), '-j', '1', '--no-progress', '--mode',
                      'hybrid'] + rec, cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout
    files = os.listdir(save)
    assert 'checkpoint.ckpt' in files and 'train_imagenet.log' in files
    # The servers hold the optimizer states, which MXNet cannot save.
    assert not [f for f in files if f.endswith('.states')]


# A worker that dies (crash, or a hard exit as train_imagenet.py makes on errors; a plain
# sys.exit would wait in MXNet's shutdown barrier) while its peer hangs.
_FAILING = '''
import os, subprocess, sys, time
import mxnet as mx  # scheduler and server processes serve inside this import
kv = mx.kv.create('dist_sync')
if kv.rank == 1:
    os._exit(3)
# rank 0 leaves a child behind and hangs, as a worker waiting for a dead peer would
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # %(marker)s'])
time.sleep(600)
# %(marker)s
'''


def test_a_failing_worker_stops_the_job_and_leaves_no_process(tmp_path):
    marker = 'gluon-atac-launch-test-%s' % uuid.uuid4().hex
    tic = time.time()
    try:
        result = _launch(['-n', '2', '-s', '1', '--', sys.executable, '-c',
                          _FAILING % {'marker': marker}], cwd=str(tmp_path), timeout=120)
    finally:
        leftover = processes_with(marker)
        for pid in leftover:
            os.kill(pid, 9)
    assert result.returncode == 3, result.stdout
    assert re.search(r'\[launch\] worker [01] \(pid \d+\) exited with 3: stopping the job',
                     result.stdout), result.stdout
    assert time.time() - tic < 60
    assert leftover == []


# Training-like work on a dist_sync kvstore: the workers push and pull one key until they
# are stopped. Every process prints its pid before the import (scheduler and server
# processes never return from it) and each worker says when its loop is running.
_TRAINING = '''
import os, sys, time
print('pid %%d' %% os.getpid(), flush=True)
# The kvstore needs none of MXNet's optional extras; without them the import takes about
# a third less, which is most of each case's time on two cores.
for extra in ('sklearn', 'pandas', 'onnx', 'scipy.stats'):
    sys.modules[extra] = None
import mxnet as mx
kv = mx.kv.create('dist_sync')
kv.init(0, mx.nd.zeros((16,)))
weights = mx.nd.zeros((16,))
step = 0
while True:
    kv.push(0, mx.nd.ones((16,)))
    kv.pull(0, out=weights)
    weights.wait_to_read()
    if step == 0:
        print('in the loop', flush=True)
    step += 1
    time.sleep(0.01)
# %(marker)s
'''


@pytest.mark.parametrize('role', ['worker 1', 'server 0', 'scheduler'])
def test_a_process_killed_mid_epoch_stops_the_job_and_leaves_no_process(role):
    # The launcher's Job runs in this process: behind `python -m gluon_atac.launch` its
    # import of MXNet would be a third of each case, and main() only exits with the code
    # wait() returns (the failing-worker test goes through the command).
    marker = 'gluon-atac-launch-test-%s' % uuid.uuid4().hex
    command = [sys.executable, '-c', _TRAINING % {'marker': marker}]
    out = io.StringIO()
    job = Job([(label, command, dict(env, OMP_NUM_THREADS='1'))
               for label, _, env in plan_processes(2, 1, free_port())], out=out)
    ended = {}
    waiter = threading.Thread(target=lambda: ended.update(code=job.wait(), at=time.time()))
    waiter.start()
    try:
        deadline = time.time() + 90
        while out.getvalue().count('in the loop') < 2:
            assert waiter.is_alive() and time.time() < deadline, out.getvalue()
            time.sleep(0.05)
        pid = int(re.search(r'^\[%s\] pid (\d+)$' % role, out.getvalue(), re.M).group(1))
        os.kill(pid, signal.SIGKILL)
        killed = time.time()
        waiter.join(timeout=60)
    finally:
        job.stop()
        leftover = processes_with(marker)
        for left in leftover:
            os.kill(left, signal.SIGKILL)
    assert ended.get('code') == 137, out.getvalue()
    assert ('[launch] %s (pid %d) was killed by SIGKILL: stopping the job' % (role, pid)
            in out.getvalue())
    assert ended['at'] - killed < 60
    assert leftover == []


def test_a_busy_port_is_one_line_and_starts_nothing(tmp_path, capsys):
    started = tmp_path / 'started'
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as stop:
            main(['-n', '1', '-s', '1', '--port', str(port), '--', sys.executable, '-c',
                  'open(%r, "w")' % str(started)])
    assert stop.value.code == 2
    assert capsys.readouterr().err == ('error: --port %d is in use on 127.0.0.1; choose '
                                       'another or omit --port for a free one\n' % port)
    assert not started.exists()
