"""Run a preset's grid: a queue of runs over GPUs (or CPU workers), resumable.

Each run lives in its own directory with ``run.json`` (what it is and how it went),
``train.out`` (the script's output) and the script's own files (``metrics.jsonl``,
``checkpoint.ckpt``, ``best.params``). Re-running the same grid skips finished runs and
resumes interrupted ones from their checkpoint.
"""
import json
import os
import queue
import subprocess
import threading
import time

from ..utils.argv import without_options
from ..errors import UsageError
from ..data.imagenet import write_synthetic_imagenet
from ..training.engine.checkpoint import atomic_write
from ..training.engine.metrics import read_metrics
from ..training.engine.run_files import RESULT_FILES
from .tinydata import TINY_DATASETS, write_cifar_subset, write_tiny_cifar

__all__ = ['run_grid', 'run_state', 'epochs_done', 'best_accuracy', 'device_groups',
           'smoke_data_dir', 'CHECKPOINT', 'MANIFEST']

CHECKPOINT = 'checkpoint.ckpt'
MANIFEST = 'run.json'
OUTPUT = 'train.out'
# The flags the runner adds per attempt; a manifest is compared without them.
_ATTEMPT_FLAGS = ('--gpus', '--save-dir', '--resume-from', '--resume')
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def epochs_done(records):
    """How many epochs a ``metrics.jsonl`` records: both trainers number epochs from 1,
    and a resumed run rewrites the file without the epochs it repeats."""
    return records[-1]['epoch'] if records else 0


def run_state(run):
    """``'finished'``, ``'partial'`` (a checkpoint to resume from) or ``'new'``."""
    records = read_metrics(os.path.join(run.dir, 'metrics.jsonl'))
    if epochs_done(records) >= run.num_epochs:
        return 'finished'
    if os.path.exists(os.path.join(run.dir, CHECKPOINT)):
        return 'partial'
    return 'new'


def best_accuracy(records):
    """Best test accuracy of a run's records (CIFAR: ``best_val_acc``; ImageNet: one
    minus the lowest ``val_top1_err``), or ``None`` before the first epoch."""
    if not records:
        return None
    if 'best_val_acc' in records[-1]:
        return records[-1]['best_val_acc']
    return 1 - min(r['val_top1_err'] for r in records)


def device_groups(gpus, per_run=1, workers=1):
    """Split the device list into the slots that run concurrently.

    Parameters
    ----------
    gpus : list of int
        GPU ids; empty means the CPU.
    per_run : int, default 1
        GPUs each run uses (2 for the published ImageNet command).
    workers : int, default 1
        Concurrent CPU runs when ``gpus`` is empty.

    Returns
    -------
    list of tuple
        One tuple of GPU ids per slot (an empty tuple is a CPU slot).
    """
    if not gpus:
        if workers < 1:
            raise UsageError('--workers must be at least 1, got %d' % workers)
        return [()] * workers
    if per_run < 1 or len(gpus) < per_run:
        raise UsageError('%d GPU(s) given but each run needs %d' % (len(gpus), per_run))
    return [tuple(gpus[i:i + per_run]) for i in range(0, len(gpus) - per_run + 1, per_run)]


def smoke_data_dir(root, dataset, source=None):
    """Write (once) the tiny data of a smoke grid under ``root/_data``.

    Parameters
    ----------
    root : str
        Output root of the grid.
    dataset : {'cifar10', 'cifar100', 'mnist5k', 'imagenet'}
    source : str, optional
        Folder of the real dataset. CIFAR: its first 512 training and 256 test images
        are copied; ImageNet: used as it is. Without it the images are generated
        (ImageNet: 4 classes of small JPEGs packed as ``train.rec``/``val.rec``).

    Returns
    -------
    str or None
        The folder to pass as ``--data-dir``; ``source`` unchanged for ``mnist5k``
        (it ships inside a package) and for a given ImageNet folder.
    """
    if dataset not in TINY_DATASETS and (dataset != 'imagenet' or source):
        return source
    path = os.path.join(root, '_data', ('subset-' if source else 'tiny-') + dataset)
    origin = os.path.join(path, 'SOURCE')
    wanted = os.path.abspath(source) if source else 'generated'
    if os.path.exists(origin):
        with open(origin) as handle:
            if handle.read() == wanted:
                return path
    if dataset == 'imagenet':
        write_synthetic_imagenet(path)
    elif source:
        write_cifar_subset(source, path, dataset)
    else:
        write_tiny_cifar(path, dataset)
    # Written last: an interrupted copy is made again next time.
    with open(origin, 'w') as handle:
        handle.write(wanted)
    return path


def _load_manifest(run):
    path = os.path.join(run.dir, MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        manifest = json.load(handle)
    if without_options(manifest.get('args', []), _ATTEMPT_FLAGS) != \
            without_options(run.args, _ATTEMPT_FLAGS):
        raise UsageError('%s was made by another command (different preset options or '
                         'budget); use another output folder' % run.dir)
    return manifest


def _running_elsewhere(manifest):
    """Whether another runner's training process for this run is still alive."""
    if not manifest or manifest.get('status') != 'running' or not manifest.get('pid'):
        return False
    try:
        os.kill(manifest['pid'], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _save_manifest(run, **status):
    manifest = {'preset': run.preset.name, 'name': run.name, 'script': run.preset.script,
                'knobs': run.knobs, 'seed': run.seed, 'num_epochs': run.num_epochs,
                'args': run.args}
    manifest.update(status)
    payload = json.dumps(manifest, indent=1, sort_keys=True)

    def write(tmp):
        with open(tmp, 'w') as handle:
            handle.write(payload)
    atomic_write(os.path.join(run.dir, MANIFEST), write)


def _script_command(run, script_dir, devices, resume_from):
    argv = run.command(script_dir, devices, resume_from)
    if not resume_from and any(os.path.lexists(os.path.join(run.dir, name))
                               for name in RESULT_FILES):
        # A run killed before its first checkpoint left files but no epoch to continue
        # from (run_state 'new'); the trainers refuse a fresh start over them unless told.
        argv.append('--overwrite')
    if not os.path.exists(argv[1]):
        # An installed package has no repository next to it: run the installed module.
        argv[1:2] = ['-m', os.path.splitext(run.preset.script)[0]]
    return argv


def _child_env(devices, workers):
    env = dict(os.environ)
    if not devices:
        # CPU workers share the cores instead of each taking all of them.
        cores = int(os.environ.get('OMP_NUM_THREADS') or os.cpu_count() or 1)
        env['OMP_NUM_THREADS'] = str(max(1, cores // workers))
    env.setdefault('MXNET_SUBGRAPH_VERBOSE', '0')
    return env


def _last_line(path):
    with open(path, errors='replace') as handle:
        lines = [line.strip() for line in handle if line.strip()]
    return lines[-1] if lines else '(no output)'


class _Grid(object):
    """Shared state of one grid: the queue, the children, the printed progress."""

    def __init__(self, runs, script_dir, workers, log):
        self.todo = queue.Queue()
        self.script_dir, self.workers, self.log = script_dir, workers, log
        self.children, self.results = {}, {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.total = len(runs)

    def work(self, devices):
        """Take runs off the queue until it is empty, on ``devices``."""
        while not self.stopping.is_set():
            try:
                index, run = self.todo.get_nowait()
            except queue.Empty:
                return
            self.results[run.name] = self.attempt(index, run, devices)

    def attempt(self, index, run, devices):
        """Start or resume one run and wait for it."""
        resume = os.path.join(run.dir, CHECKPOINT) if run_state(run) == 'partial' else None
        argv = _script_command(run, self.script_dir, devices, resume)
        where = 'gpu %s' % ','.join(map(str, devices)) if devices else 'cpu'
        self.log('[%d/%d] %s %s/%s on %s' % (index, self.total,
                                             'resume' if resume else 'start',
                                             run.preset.name, run.name, where))
        start = time.time()
        os.makedirs(run.dir, exist_ok=True)
        with open(os.path.join(run.dir, OUTPUT), 'a') as out:
            out.write('$ %s\n' % ' '.join(argv))
            out.flush()
            # The child keeps our working directory: relative --out/--data-dir hold.
            child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                     env=_child_env(devices, self.workers))
            with self.lock:
                self.children[run.name] = child
            _save_manifest(run, status='running', command=argv, started=start, pid=child.pid)
            code = child.wait()
            with self.lock:
                del self.children[run.name]
        seconds = time.time() - start
        if self.stopping.is_set():
            status = 'interrupted'
        elif code == 0 and run_state(run) == 'finished':
            status = 'finished'
        else:
            status = 'failed'
        _save_manifest(run, status=status, command=argv, returncode=code, seconds=seconds)
        if status == 'failed':
            self.log('[%d/%d] FAILED %s/%s (exit %d): %s  [see %s]' % (
                index, self.total, run.preset.name, run.name, code,
                _last_line(os.path.join(run.dir, OUTPUT)), os.path.join(run.dir, OUTPUT)))
        elif status == 'finished':
            best = best_accuracy(read_metrics(os.path.join(run.dir, 'metrics.jsonl')))
            self.log('[%d/%d] done %s/%s: best val acc %s in %.0f s' % (
                index, self.total, run.preset.name, run.name,
                '%.4f' % best if best is not None else '?', seconds))
        return status

    def stop(self):
        """Terminate the running children (their checkpoints let a re-run resume)."""
        self.stopping.set()
        with self.lock:
            children = list(self.children.values())
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def run_grid(runs, gpus=(), per_run=1, workers=1, script_dir=None, dry_run=False,
             log=print):
    """Run every unfinished run of ``runs``, one per device slot at a time.

    Parameters
    ----------
    runs : list of Run
    gpus : sequence of int, default ()
        GPU ids to spread runs over; empty runs on the CPU.
    per_run : int, default 1
        GPUs per run.
    workers : int, default 1
        Concurrent runs on the CPU.
    script_dir : str, optional
        Folder of ``train_cifar.py`` and ``train_imagenet.py`` (default: the repository).
    dry_run : bool, default False
        Print the commands instead of running them.
    log : callable, default print
        Receives one line per event.

    Returns
    -------
    dict
        Run name -> ``'skipped'`` (already finished), ``'busy'`` (its process, started
        by another runner, is alive), ``'finished'``, ``'failed'`` or ``'interrupted'``;
        with ``dry_run``, ``'planned'``.
    """
    script_dir = script_dir or _REPO
    slots = device_groups(list(gpus), per_run, workers)
    results, pending = {}, []
    for run in runs:
        manifest = _load_manifest(run)
        if run_state(run) == 'finished':
            results[run.name] = 'skipped'
        elif _running_elsewhere(manifest):
            log('%s/%s is being trained by process %d: left alone'
                % (run.preset.name, run.name, manifest['pid']))
            results[run.name] = 'busy'
        else:
            pending.append(run)
    if dry_run:
        for i, run in enumerate(pending):
            resume = os.path.join(run.dir, CHECKPOINT) if run_state(run) == 'partial' else None
            argv = _script_command(run, script_dir, slots[i % len(slots)], resume)
            log(' '.join(argv))
            results[run.name] = 'planned'
        return results
    if results:
        log('%d of %d runs already finished: skipped' % (len(results), len(runs)))
    grid = _Grid(pending, script_dir, len(slots), log)
    for i, run in enumerate(pending, 1):
        grid.todo.put((i, run))
    threads = [threading.Thread(target=grid.work, args=(slot,), daemon=True) for slot in slots]
    for thread in threads:
        thread.start()
    try:
        # Sleep rather than join: an interrupt landing inside Thread.join can leave the
        # thread looking finished, and its manifest would never be written.
        while any(thread.is_alive() for thread in threads):
            time.sleep(0.2)
    except KeyboardInterrupt:
        log('interrupted: stopping %d running job(s); re-run the same command to resume'
            % len(grid.children))
        grid.stop()
        for thread in threads:
            thread.join()
        raise
    results.update(grid.results)
    return results

