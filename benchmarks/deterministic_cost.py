"""Training speed of ``train_cifar.py --deterministic`` against the default engine.

The engine type is fixed when MXNet starts, so the two settings cannot share a process:
each round runs one epoch of the same command twice, default then ``--deterministic``
(the default with the caller's ``OMP_NUM_THREADS``), and the ratio of the two runs'
``samples_per_sec`` is taken per round, so drift of the machine between rounds cancels.
The median round ratio and its range are reported with the CPU model.

Examples
--------
::

    OMP_NUM_THREADS=2 python benchmarks/deterministic_cost.py --rounds 3
    python benchmarks/deterministic_cost.py --rounds 1 -- --dataset cifar10 --data-dir DIR
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.join(_HERE, os.pardir)
sys.path[:0] = [_HERE, _ROOT]
from deploy_throughput import cpu_name  # noqa: E402  (path set up above)

# make demo's ATAC network and data.
DEMO_FLAGS = ['--dataset', 'mnist5k', '--model', 'cifar_resnet20_v2', '--act-type', 'ChaATAC',
              '--useReLU', '--r', '2', '--batch-size', '64', '--mode', 'hybrid', '-j', '2']


def epoch_speed(flags, save_dir):
    """Images/s of one training epoch of ``train_cifar.py flags`` (a fresh process)."""
    subprocess.run([sys.executable, os.path.join(_ROOT, 'train_cifar.py'), '--num-epochs',
                    '1', '--no-progress', '--save-dir', save_dir] + flags, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(save_dir, 'metrics.jsonl')) as handle:
        return json.loads(handle.readline())['samples_per_sec']


def measure(flags, rounds):
    """Per round: images/s of the default and the deterministic run, and their ratio."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            default = epoch_speed(flags, os.path.join(tmp, 'default%d' % i))
            deterministic = epoch_speed(flags + ['--deterministic'],
                                        os.path.join(tmp, 'deterministic%d' % i))
            results.append({'default': default, 'deterministic': deterministic,
                            'ratio': deterministic / default})
    return results


def main(argv=None):
    """Run the rounds and print (and optionally save) the figures."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index('--') if '--' in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--json', default=None, help='write the results to this file')
    args = p.parse_args(argv[:cut])
    flags = DEMO_FLAGS + argv[cut + 1:]
    rounds = measure(flags, args.rounds)
    ratios = [r['ratio'] for r in rounds]
    report = {'flags': flags, 'cpu': cpu_name(), 'omp_num_threads':
              os.environ.get('OMP_NUM_THREADS'), 'rounds': rounds,
              'median_ratio': statistics.median(ratios)}
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(report, handle, indent=1)
    print('train_cifar.py %s  OMP_NUM_THREADS=%s  %s' % (' '.join(flags),
                                                       report['omp_num_threads'], report['cpu']))
    for r in rounds:
        print('default %.1f img/s  deterministic %.1f img/s  ratio %.3f'
              % (r['default'], r['deterministic'], r['ratio']))
    print('median ratio %.3f (range %.3f-%.3f)' % (report['median_ratio'], min(ratios),
                                                   max(ratios)))
    return report


if __name__ == '__main__':
    main()
