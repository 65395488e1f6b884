"""Images/s of two training workers on one machine: MXNet's ``dist_sync`` parameter server
(started by ``gluon_atac.launch``, one server) against Horovod's ring allreduce (started by
``horovodrun --gloo``).

Both jobs run ``train_imagenet.py`` on the same synthetic class folders with the same
network, batch per worker, epochs and threads per process, one after the other in this
process's run; the figure of each is the ``samples_per_sec`` of its last epoch in
``metrics.jsonl`` (the first epoch also pays for start-up), images of all workers per
second. The CPU model is reported with them.

Examples
--------
::

    python benchmarks/distributed_speed.py
    python benchmarks/distributed_speed.py --epochs 3 --json speed.json -- --model resnet50_v1b
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.join(_HERE, os.pardir)
sys.path[:0] = [_HERE, _ROOT]
from deploy_throughput import cpu_name  # noqa: E402  (path set up above)
from gluon_atac.data.imagenet import write_synthetic_imagenet  # noqa: E402

NETWORK = ['--model', 'resnet18_v1b', '--classes', '8', '--input-size', '64',
           '--batch-size', '16', '--mode', 'hybrid', '-j', '0', '--no-progress',
           '--log-interval', '0']


def commands(flags, workers):
    """The two jobs' command lines, by kvstore name, for ``workers`` processes."""
    train = [sys.executable, os.path.join(_ROOT, 'train_imagenet.py')] + flags
    horovodrun = shutil.which('horovodrun') or os.path.join(
        os.path.dirname(sys.executable), 'horovodrun')
    return {
        'dist_sync': [sys.executable, '-m', 'gluon_atac.launch', '-n', str(workers), '-s',
                      '1', '--'] + train + ['--kv-store', 'dist_sync'],
        'horovod': [horovodrun, '-np', str(workers), '-H', 'localhost:%d' % workers,
                    '--gloo'] + train + ['--kv-store', 'horovod'],
    }


def last_epoch_speed(command, save_dir, threads):
    """Images/s of the last epoch of ``command`` run with ``--save-dir save_dir``."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join([_ROOT, os.environ.get('PYTHONPATH', '')]))
    subprocess.run(command + ['--save-dir', save_dir], check=True, env=env, cwd=_ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(save_dir, 'metrics.jsonl')) as handle:
        return json.loads(handle.read().splitlines()[-1])['samples_per_sec']


def main(argv=None):
    """Run both jobs and print (and optionally save) their images/s."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index('--') if '--' in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--images-per-class', type=int, default=32,
                   help='training images of each of the 8 synthetic classes')
    p.add_argument('--threads', type=int, default=1, help='OMP_NUM_THREADS per process')
    p.add_argument('--json', default=None, help='write the results to this file')
    args = p.parse_args(argv[:cut])
    report = {'cpu': cpu_name(), 'workers': args.workers, 'threads': args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_synthetic_imagenet(os.path.join(tmp, 'data'), classes=8,
                                        train_per_class=args.images_per_class,
                                        val_per_class=2, size=72)
        flags = NETWORK + ['--data-dir', data, '--num-epochs', str(args.epochs)] + \
            argv[cut + 1:]
        report['flags'] = flags
        for kind, command in commands(flags, args.workers).items():
            report[kind] = last_epoch_speed(command, os.path.join(tmp, kind), args.threads)
    report['horovod_over_dist_sync'] = report['horovod'] / report['dist_sync']
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(report, handle, indent=1)
    print('%d workers, OMP_NUM_THREADS=%d each, %s' % (args.workers, args.threads,
                                                      report['cpu']))
    print('train_imagenet.py %s' % ' '.join(report['flags']))
    print('dist_sync (gluon_atac.launch, 1 server) %.1f img/s' % report['dist_sync'])
    print('horovod (horovodrun --gloo)             %.1f img/s  (%.2fx)'
          % (report['horovod'], report['horovod_over_dist_sync']))
    return report


if __name__ == '__main__':
    main()
