"""The ``--save-dir`` lock: atomic between processes, never blocking, taken over from the
dead; and the refusal of a fresh run over another run's files."""
import multiprocessing
import os
import subprocess
import sys
import time

import pytest

from gluon_atac.errors import UsageError
from gluon_atac.training.engine.run_files import RESULT_FILES, RunFiles, RunLock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
TRIALS = 100


def _racer(root, start, done, results):
    """One of two processes: per trial, wait for the other, take the lock of that trial's
    folder, report, and hold it until the other has reported too."""
    for trial in range(TRIALS):
        start.wait()
        lock = RunLock(os.path.join(root, 'trial%03d' % trial))
        try:
            lock.__enter__()
        except UsageError as err:
            results.put((trial, 'refused', str(err)))
            done.wait()
            continue
        results.put((trial, 'won', os.getpid()))
        done.wait()
        lock.__exit__(None, None, None)


def test_two_processes_started_together_never_both_take_the_lock(tmp_path):
    # Forked, so each racer is a real process running only the lock acquisition.
    context = multiprocessing.get_context('fork')
    start, done = context.Barrier(2), context.Barrier(2)
    results = context.Queue()
    racers = [context.Process(target=_racer, args=(str(tmp_path), start, done, results))
              for _ in range(2)]
    for racer in racers:
        racer.start()
    outcomes = {}
    for _ in range(2 * TRIALS):
        trial, what, detail = results.get(timeout=120)
        outcomes.setdefault(trial, []).append((what, detail))
    for racer in racers:
        racer.join(timeout=60)
        assert racer.exitcode == 0
    winners = [sum(what == 'won' for what, _ in outcomes[t]) for t in range(TRIALS)]
    assert winners == [1] * TRIALS
    # The loser names the winner's PID, or no PID when it looked before the PID was
    # written; never PID 0.
    for trial in range(TRIALS):
        (_, pid), = [o for o in outcomes[trial] if o[0] == 'won']
        (_, message), = [o for o in outcomes[trial] if o[0] == 'refused']
        lock = os.path.join(str(tmp_path), 'trial%03d' % trial, '.run.lock')
        assert message in ('%s is in use by the run of %s (lock %s)' % (
            os.path.dirname(lock), holder, lock)
            for holder in ('process %d' % pid, 'another process'))
        assert not os.path.exists(lock)


def test_a_live_holder_is_named_and_a_dead_ones_lock_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys, time\n'
         'from gluon_atac.training.engine.run_files import RunLock\n'
         'with RunLock(sys.argv[1]):\n'
         '    print("held", flush=True)\n'
         '    time.sleep(600)\n', str(tmp_path)],
        stdout=subprocess.PIPE, universal_newlines=True, cwd=ROOT)
    try:
        assert holder.stdout.readline() == 'held\n'
        lock = str(tmp_path / '.run.lock')
        with pytest.raises(UsageError) as refused:
            RunLock(str(tmp_path)).__enter__()
        assert str(refused.value) == '%s is in use by the run of process %d (lock %s)' % (
            tmp_path, holder.pid, lock)
    finally:
        holder.kill()
        holder.wait()
    # The killed holder left its file, holding its PID, but no lock.
    with open(lock) as handle:
        assert handle.read() == '%d\n' % holder.pid
    with RunLock(str(tmp_path)):
        with open(lock) as handle:
            assert handle.read() == '%d\n' % os.getpid()
    assert not os.path.exists(lock)


def test_a_fifo_or_a_link_as_the_lock_is_refused_at_once(tmp_path):
    fifo = tmp_path / 'fifo' / '.run.lock'
    fifo.parent.mkdir()
    os.mkfifo(str(fifo))
    started = time.time()
    with pytest.raises(UsageError) as refused:
        RunLock(str(fifo.parent)).__enter__()
    assert time.time() - started < 5
    assert str(refused.value) == ('cannot take the lock %s: it is not a regular file '
                                  '(remove it)' % fifo)
    link = tmp_path / 'link' / '.run.lock'
    link.parent.mkdir()
    (tmp_path / 'elsewhere').write_text('kept\n')
    os.symlink(str(tmp_path / 'elsewhere'), str(link))
    with pytest.raises(UsageError) as refused:
        RunLock(str(link.parent)).__enter__()
    assert str(refused.value) == 'cannot take the lock %s: it is a symbolic link' % link
    assert (tmp_path / 'elsewhere').read_text() == 'kept\n'


def test_train_cifar_refuses_a_fifo_lock_in_one_line_without_hanging(tmp_path):
    os.mkfifo(str(tmp_path / '.run.lock'))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'train_cifar.py'), '--save-dir', str(tmp_path),
         '--data-dir', str(tmp_path / 'nothing'), '--no-progress'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        'error: cannot take the lock %s: it is not a regular file (remove it)'
        % (tmp_path / '.run.lock')]


@pytest.mark.parametrize('name', RESULT_FILES)
def test_a_fresh_start_over_any_result_file_is_refused(tmp_path, name):
    (tmp_path / name).write_text('kept\n')
    files = RunFiles(str(tmp_path), 'cifar', 'm')
    with pytest.raises(UsageError) as refused:
        files.refuse_fresh_start('--resume-from')
    ways = 'choose another --save-dir, or pass --overwrite to replace them'
    if name == 'checkpoint.ckpt':
        ways = 'resume it (--resume-from %s), %s' % (tmp_path / name, ways)
    assert str(refused.value) == '%s holds the files of another run (%s): %s' % (
        tmp_path, name, ways)
    files.refuse_fresh_start('--resume-from', overwrite=True)
    RunFiles(str(tmp_path / 'empty'), 'cifar', 'm').refuse_fresh_start('--resume-from')
    assert (tmp_path / name).read_text() == 'kept\n'
