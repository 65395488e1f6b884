"""The grid runner: a smoke grid on tiny CIFAR, skipping, resuming, GPU queue, CLI."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gluon_atac.errors import UsageError
from gluon_atac.experiments import device_groups, expand, run_grid, run_state
from gluon_atac.commands.experiments import main
from gluon_atac.training.engine.metrics import read_metrics

from support import smoke_runs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Stands in for train_cifar.py: notes its device and times, writes the metrics file.
FAKE_SCRIPT = '''
import json, os, sys, time
argv = sys.argv[1:]
value = lambda flag: argv[argv.index(flag) + 1] if flag in argv else ''
save_dir = value('--save-dir')
os.makedirs(save_dir, exist_ok=True)
start = time.time()
time.sleep(0.3)
with open(os.path.join(save_dir, 'metrics.jsonl'), 'w') as f:
    for epoch in range(1, int(value('--num-epochs')) + 1):
        f.write(json.dumps({'epoch': epoch, 'best_val_acc': 0.5, 'val_acc': 0.5}) + '\\n')
with open(os.path.join(save_dir, 'device.json'), 'w') as f:
    json.dump({'gpus': value('--gpus'), 'start': start, 'end': time.time(),
               'omp': os.environ.get('OMP_NUM_THREADS')}, f)
'''


@pytest.mark.slow
def test_smoke_grid_completes(smoke_grid):
    root, runs, results, lines = smoke_grid
    assert len(runs) == 4
    assert results == {run.name: 'finished' for run in runs}, lines
    for run in runs:
        records = read_metrics(os.path.join(run.dir, 'metrics.jsonl'))
        assert [r['epoch'] for r in records] == [1, 2]
        assert os.path.exists(os.path.join(run.dir, 'best.params'))
        with open(os.path.join(run.dir, 'run.json')) as handle:
            manifest = json.load(handle)
        assert manifest['status'] == 'finished' and manifest['returncode'] == 0
    assert sum('done activations/' in line for line in lines) == 4


@pytest.mark.slow
def test_rerun_skips_finished_runs(smoke_grid):
    root, runs, _, _ = smoke_grid
    before = {run.name: os.path.getsize(os.path.join(run.dir, 'train.out')) for run in runs}
    lines = []
    assert run_grid(smoke_runs(root), log=lines.append) == {r.name: 'skipped' for r in runs}
    assert lines == ['4 of 4 runs already finished: skipped']
    assert before == {r.name: os.path.getsize(os.path.join(r.dir, 'train.out')) for r in runs}


@pytest.mark.slow
def test_other_options_in_the_same_folder_are_refused(smoke_grid):
    root = smoke_grid[0]
    with pytest.raises(UsageError, match='another command'):
        run_grid(expand('activations', root, seeds=2, dataset='cifar10', only=['relu-b1-*']),
                 dry_run=True)


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_checkpoint(smoke_grid, tmp_path):
    reference = {r.name: r for r in smoke_grid[1]}['relu-b1-s1']
    run = [r for r in smoke_runs(str(tmp_path)) if r.name == 'relu-b1-s1'][0]
    # What an interruption after epoch 1 leaves: metrics and checkpoint of epoch 1.
    argv = run.command(REPO)
    argv[argv.index('--num-epochs') + 1] = '1'
    subprocess.run(argv, check=True, capture_output=True, cwd=REPO,
                   env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert run_state(run) == 'partial'
    lines = []
    assert run_grid([run], workers=2, log=lines.append) == {run.name: 'finished'}
    assert lines[0].startswith('[1/1] resume activations/relu-b1-s1')
    with open(os.path.join(run.dir, 'train.out')) as handle:
        assert '--resume-from %s' % os.path.join(run.dir, 'checkpoint.ckpt') in handle.read()
    resumed = read_metrics(os.path.join(run.dir, 'metrics.jsonl'))
    straight = read_metrics(os.path.join(reference.dir, 'metrics.jsonl'))
    assert [r['epoch'] for r in resumed] == [1, 2]
    for key in ('train_loss', 'train_acc', 'val_acc', 'best_val_acc'):
        assert resumed[-1][key] == pytest.approx(straight[-1][key], abs=1e-4), key


def test_sigterm_stops_the_runner_and_its_child(tmp_path):
    root = str(tmp_path)
    cmd = [sys.executable, '-m', 'gluon_atac.experiments', 'run', 'activations', '--budget',
           'smoke', '--dataset', 'cifar10', '--only', 'atac-b2-s0', '--out', root]
    runner = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    manifest_path = os.path.join(root, 'activations', 'atac-b2-s0', 'run.json')
    deadline = time.time() + 60
    pid = None
    while pid is None and time.time() < deadline:
        if os.path.exists(manifest_path):
            with open(manifest_path) as handle:
                pid = json.load(handle).get('pid')
        time.sleep(0.05)
    assert pid, 'the run never started'
    runner.send_signal(signal.SIGTERM)
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 130, output
    assert 're-run the same command to resume' in output
    with open(manifest_path) as handle:
        assert json.load(handle)['status'] == 'interrupted'
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_runs_queue_over_gpus_one_per_device(tmp_path):
    with open(tmp_path / 'train_cifar.py', 'w') as handle:
        handle.write(FAKE_SCRIPT)
    runs = expand('reduction', str(tmp_path / 'out'), budget='smoke')
    results = run_grid(runs, gpus=[3, 5], script_dir=str(tmp_path), log=lambda line: None)
    assert set(results.values()) == {'finished'}
    spans = []
    for run in runs:
        with open(os.path.join(run.dir, 'device.json')) as handle:
            spans.append(json.load(handle))
    assert {s['gpus'] for s in spans} == {'3', '5'}
    for device in ('3', '5'):
        mine = sorted((s['start'], s['end']) for s in spans if s['gpus'] == device)
        assert all(a[1] <= b[0] for a, b in zip(mine, mine[1:])), 'two runs shared a GPU'


def test_cpu_workers_share_the_cores_and_relative_paths_hold(tmp_path, monkeypatch):
    with open(tmp_path / 'train_cifar.py', 'w') as handle:
        handle.write(FAKE_SCRIPT)
    monkeypatch.setenv('OMP_NUM_THREADS', '4')
    monkeypatch.chdir(tmp_path)
    runs = expand('context', 'out', budget='smoke')
    run_grid(runs, workers=2, script_dir=str(tmp_path), log=lambda line: None)
    for run in runs:
        with open(tmp_path / run.dir / 'device.json') as handle:
            assert json.load(handle)['omp'] == '2'


def test_device_groups():
    assert device_groups([0, 1, 2, 3], per_run=2) == [(0, 1), (2, 3)]
    assert device_groups([0, 1, 2], per_run=1) == [(0,), (1,), (2,)]
    assert device_groups([], workers=3) == [(), (), ()]
    with pytest.raises(UsageError, match='each run needs 2'):
        device_groups([0], per_run=2)


def test_cli_lists_prints_and_rejects(capsys, tmp_path):
    main(['list'])
    out = capsys.readouterr().out
    assert 'activations' in out and 'imagenet_attention' in out
    main(['commands', 'context', '--out', str(tmp_path), '--gpus', '0,1', '--seeds', '2'])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all('train_cifar' in line for line in lines)
    assert ['--gpus 0' in line for line in lines] == [True, False, True, False]
    assert not os.listdir(tmp_path), 'printing commands must not create run folders'
    with pytest.raises(SystemExit) as exit_info:
        main(['run', 'context', '--gpus', 'zero', '--out', str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == \
        "error: --gpus must be comma-separated GPU ids like 0,1; got 'zero'"


def test_a_run_another_runner_is_training_is_left_alone(tmp_path):
    from gluon_atac.experiments.runner import _save_manifest
    run = expand('context', str(tmp_path), budget='smoke')[0]
    os.makedirs(run.dir)
    _save_manifest(run, status='running', pid=os.getpid())
    lines = []
    assert run_grid([run], dry_run=True, log=lines.append) == {run.name: 'busy'}
    assert 'being trained by process %d' % os.getpid() in lines[0]
    # A dead process's leftover 'running' status does not block a re-run.
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    _save_manifest(run, status='running', pid=dead.pid)
    assert run_grid([run], dry_run=True, log=lines.append) == {run.name: 'planned'}


def test_a_run_killed_before_its_first_checkpoint_is_restarted_with_overwrite(tmp_path):
    # Its model card and empty metrics stay behind; the trainers refuse a fresh start over
    # them unless told, and the runner owns the folder.
    run = expand('context', str(tmp_path), budget='smoke')[0]
    lines = []
    assert run_grid([run], dry_run=True, log=lines.append) == {run.name: 'planned'}
    assert '--overwrite' not in lines[-1].split()
    os.makedirs(run.dir)
    with open(os.path.join(run.dir, 'model.json'), 'w') as handle:
        handle.write('{}')
    assert run_state(run) == 'new'
    assert run_grid([run], dry_run=True, log=lines.append) == {run.name: 'planned'}
    assert lines[-1].split()[-1] == '--overwrite'
