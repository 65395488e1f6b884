"""``python -m gluon_atac.experiments {list,commands,run,report}``.

Examples
--------
List the presets, print a grid's commands, train it over four GPUs with three seeds,
then write the tables and figures::

    python -m gluon_atac.experiments list
    python -m gluon_atac.experiments commands activations --seeds 3
    python -m gluon_atac.experiments run activations --seeds 3 --gpus 0,1,2,3 --coarse-labels
    python -m gluon_atac.experiments report runs/experiments

A CPU check of the whole machinery in minutes (tiny generated CIFAR, 2 epochs)::

    python -m gluon_atac.experiments run activations --budget smoke --out runs/smoke --report
"""
import argparse
import signal
import sys

from ..errors import UsageError, cli_main
from ..utils.argv import command_parser
from ..experiments.presets import BUDGETS, PRESETS, expand
from ..experiments.report import build_report
from ..experiments.runner import run_grid, smoke_data_dir

_DEFAULT_OUT = 'runs/experiments'


def _gpu_list(text):
    parts = [p.strip() for p in text.split(',') if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise UsageError('--gpus must be comma-separated GPU ids like 0,1; got %r' % text)
    return [int(p) for p in parts]


def _grid_options(parser):
    parser.add_argument('presets', nargs='+', metavar='PRESET',
                        help='preset name(s), or "all" for every CIFAR preset (see the '
                        'list command)')
    parser.add_argument('--out', default=_DEFAULT_OUT,
                        help='results folder (default %s)' % _DEFAULT_OUT)
    parser.add_argument('--seeds', type=int, default=1, help='seeds 0..N-1 per variant')
    parser.add_argument('--budget', default='paper', choices=sorted(BUDGETS),
                        help='paper: the published recipe; smoke: 2 epochs on tiny data '
                        '(CIFAR presets: 512/256 images of --data-dir, else generated)')
    parser.add_argument('--dataset', default='cifar100',
                        choices=['cifar10', 'cifar100', 'mnist5k'], help='CIFAR presets')
    parser.add_argument('--coarse-labels', action='store_true',
                        help='CIFAR-100 on its 20 coarse labels, as the paper trained')
    parser.add_argument('--data-dir', default=None,
                        help='dataset folder passed to the scripts (smoke: its first 512 '
                        'training and 256 test images; without it, generated images)')
    parser.add_argument('--epochs', type=int, default=None,
                        help="override the budget's epochs; the schedule scales along")
    parser.add_argument('--only', default=None,
                        help='comma-separated run-name patterns, e.g. "relu-b1-*,atac-*"')
    parser.add_argument('--gpus', default='', help='GPU ids to spread runs over; '
                        'empty: CPU')
    parser.add_argument('--gpus-per-run', type=int, default=None,
                        help='GPUs a run uses (default 1; 2 for ImageNet presets)')
    parser.add_argument('--workers', type=int, default=1,
                        help='concurrent runs on the CPU (they share the cores)')
    parser.add_argument('--script-dir', default=None,
                        help='folder of train_cifar.py/train_imagenet.py (default: repo)')


def _expand_all(args):
    if args.presets == ['all']:
        # ImageNet grids need a dataset and GPUs: they are asked for by name.
        names = [name for name, preset in PRESETS.items() if preset.family == 'cifar']
    else:
        names = args.presets
    only = args.only.split(',') if args.only else None
    runs = []
    for name in names:
        data_dir = args.data_dir
        if args.budget == 'smoke' and name in PRESETS:
            dataset = args.dataset if PRESETS[name].family == 'cifar' else 'imagenet'
            data_dir = smoke_data_dir(args.out, dataset, source=data_dir)
        runs.append(expand(name, args.out, seeds=args.seeds, budget=args.budget,
                           dataset=args.dataset, coarse_labels=args.coarse_labels,
                           data_dir=data_dir, only=only, epochs=args.epochs))
    return runs


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _run(args, dry_run):
    results = {}
    for runs in _expand_all(args):
        family = runs[0].preset.family
        per_run = args.gpus_per_run or (2 if family == 'imagenet' else 1)
        results.update(run_grid(runs, gpus=_gpu_list(args.gpus), per_run=per_run,
                                workers=args.workers, script_dir=args.script_dir,
                                dry_run=dry_run))
    if dry_run:
        return 0
    counts = {}
    for status in results.values():
        counts[status] = counts.get(status, 0) + 1
    print('summary: ' + ', '.join('%d %s' % (n, s) for s, n in sorted(counts.items())))
    if getattr(args, 'report', False):
        build_report(args.out)
    return 1 if counts.get('failed') else 0


@cli_main
def main(argv=None):
    """Entry point of ``python -m gluon_atac.experiments``."""
    parser = command_parser(
        'experiments', __doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('list', help='the presets and their run counts')
    commands = sub.add_parser('commands', help="print a grid's command lines")
    _grid_options(commands)
    run = sub.add_parser('run', help='train a grid (skips finished runs, resumes others)')
    _grid_options(run)
    run.add_argument('--report', action='store_true', help='write the report afterwards')
    report = sub.add_parser('report', help='tables and figures of a results folder')
    report.add_argument('dir', help='results folder of the run command')
    args = parser.parse_args(argv)
    if args.command == 'list':
        for preset in PRESETS.values():
            print('%-20s %3d variants  %-17s %s' % (preset.name, len(preset.variants),
                                                    preset.script, preset.title))
        return 0
    if args.command == 'report':
        print(build_report(args.dir, log=lambda line: print(line, file=sys.stderr)))
        return 0
    if args.command == 'run':
        # A plain `kill` of the runner stops its children cleanly, like Ctrl-C.
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _run(args, dry_run=args.command == 'commands')
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
