"""Speed and peak memory of the paper's ImageNet baselines, measured side by side.

ResNet-50, SE, GE-θ+, AA (attention-augmented), FA (stand-alone local self-attention)
and ATAC, all ResNet-50 v1b hosts, are built, hybridized and warmed up in one process;
timed windows then run interleaved (one window of each network in turn), so drifts of
a shared machine hit them alike; the median window gives images/s. Peak memory is the
resident-set high-water mark of a few training steps, each network in a fresh process.

Examples
--------
::

    python benchmarks/baselines.py --batch-size 4 --json baselines.json
    python benchmarks/baselines.py --networks resnet50,aa --input-size 64 --no-memory
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir))
sys.path.insert(0, HERE)
from gluon_atac import get_model  # noqa: E402  (path set up above)
from gluon_atac.utils.counting import count_flops, count_params  # noqa: E402
import throughput  # noqa: E402  (the interleaved-window machinery of the ATAC benchmark)

# Network label -> get_model name and options; the plain baselines are ReLU networks.
NETWORKS = {
    'resnet50': ('resnet50_v1b', dict(act_type='relu')),
    'se': ('resnet50_v1b', dict(act_type='relu', attention='se')),
    'ge': ('resnet50_v1b', dict(act_type='relu', attention='ge')),
    'aa': ('resnet50_v1b_aa', {}),
    'fa': ('resnet50_v1b_fa', {}),
    'atac': ('resnet50_v1b', dict(act_type='ChaATAC')),
}


def parse_args(argv=None):
    """Command line of the benchmark (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--networks', default=','.join(NETWORKS),
                   help='comma separated, of: %s' % ', '.join(NETWORKS))
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--input-size', type=int, default=224)
    p.add_argument('--classes', type=int, default=1000)
    p.add_argument('--mode', default='infer,train')
    p.add_argument('--warmup', type=int, default=1, help='untimed iterations per network')
    p.add_argument('--windows', type=int, default=3, help='timed windows per network')
    p.add_argument('--iters', type=int, default=1, help='iterations per timed window')
    p.add_argument('--no-memory', action='store_true', help='skip the peak-memory probes')
    p.add_argument('--json', default=None, help='write the results to this file')
    p.add_argument('--rss-probe', default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.networks = [n.strip().lower() for n in args.networks.split(',') if n.strip()]
    unknown = set(args.networks) - set(NETWORKS)
    if unknown:
        p.error('unknown network(s) %s; choose from %s'
                % (', '.join(sorted(unknown)), ', '.join(NETWORKS)))
    args.modes = [m.strip() for m in args.mode.split(',') if m.strip()]
    return args


def network(label, args):
    """The uninitialized network of ``label`` at the benchmark's input size."""
    name, options = NETWORKS[label]
    return get_model(name, classes=args.classes, input_size=args.input_size, **options)


def runner(args, label, ctx):
    """A :class:`throughput.Runner` (data, loss, trainer) of one baseline network."""
    import mxnet as mx
    net = network(label, args)
    net.initialize(mx.init.MSRAPrelu(), ctx=ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    return throughput.Runner(args, label, ctx, net=net)


def measure(args, ctx):
    """Images/s per mode and network: interleaved windows, median of each."""
    runners = {label: runner(args, label, ctx) for label in args.networks}
    return {mode: throughput.interleaved(runners, mode, args) for mode in args.modes}


def rss_probe(args, ctx):
    """Child-process entry: peak RSS (MiB) of a few training steps of one network."""
    runner(args, args.rss_probe, ctx).run('train', 2)
    print(json.dumps({'peak_rss_mb': throughput._status_mb('VmHWM')}))


def memory(args, argv):
    """Peak RSS of training for each network, one fresh process after another (the
    networks together would not fit beside each other in a small machine's memory)."""
    out = {}
    for label in args.networks:
        cmd = [sys.executable, os.path.abspath(__file__)] + list(argv) + ['--rss-probe', label]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError('memory probe for %s failed:\n%s' % (label, proc.stderr[-2000:]))
        out[label] = json.loads(proc.stdout.strip().splitlines()[-1])['peak_rss_mb']
    return out


def main(argv=None):
    """Run the benchmark, print a markdown table and optionally save the JSON."""
    import mxnet as mx
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    ctx = mx.cpu()
    if args.rss_probe:
        rss_probe(args, ctx)
        return None
    shape = (1, 3, args.input_size, args.input_size)
    report = {'batch_size': args.batch_size, 'input_size': args.input_size,
              'omp_num_threads': os.environ.get('OMP_NUM_THREADS'), 'cpu': cpu_name(),
              'counts': {label: dict(count_params(network(label, args), shape),
                                     macs=count_flops(network(label, args), shape)['macs'])
                         for label in args.networks},
              'throughput': measure(args, ctx)}
    if 'train' in args.modes and not args.no_memory:
        report['train_peak_rss_mb'] = memory(
            args, throughput.without_options(argv, ('--json',)))
    print(table(report))
    throughput.save_report(args.json, report)
    return report


def cpu_name():
    """The CPU's model name from /proc/cpuinfo (``'unknown'`` elsewhere)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return 'unknown'


def table(report):
    """The report as a markdown table, one row per network."""
    speed = report['throughput']
    memory_mb = report.get('train_peak_rss_mb', {})
    lines = ['| network | params | GMACs | infer img/s | train img/s | train peak RSS MiB |',
             '|---|---|---|---|---|---|']
    for label, counts in report['counts'].items():
        cell = lambda mode: ('%.2f' % speed[mode][label]['images_per_s']
                             if mode in speed else '–')
        lines.append('| %s | %.2fM | %.2f | %s | %s | %s |' % (
            label, counts['trainable'] / 1e6, counts['macs'] / 1e9, cell('infer'),
            cell('train'), '%.0f' % memory_mb[label] if label in memory_mb else '–'))
    lines.append('batch %d, %dx%d, %s, OMP_NUM_THREADS=%s' % (
        report['batch_size'], report['input_size'], report['input_size'], report['cpu'],
        report['omp_num_threads']))
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
