"""Throughput of one host with several activations, measured side by side.

Every act type is built, hybridized and warmed up in the same process; timed windows then
run interleaved (relu, atac, relu, atac, ...) so that clock and cache drift hit all of
them alike, and the median window gives images/s. Ratios are against ``relu``; the range
after each is the interquartile range of the per-window ratios (window i of an act type
over window i of ``relu``), a measure of how noisy the machine was.

Examples
--------
::

    python benchmarks/throughput.py --model cifar_resnet20_v2 --batch-size 128
    python benchmarks/throughput.py --model resnet50_v1b --mode infer --batch-size 16
    python benchmarks/throughput.py --act-types relu,chaatac,chaatac-gluon --json out.json
    python benchmarks/throughput.py --act-types relu,relu-mkldnn,chaatac,chaatac-gluon \
        --builds native,avx2 --mode infer

``chaatac-gluon`` is ATAC with the native operators switched off (the plain Gluon graph).
A ``-mkldnn`` suffix runs the network through MXNet's oneDNN subgraph backend
(``optimize_for(backend='MKLDNN')``, which fuses convolutions with BN and ReLU), the best
MXNet deployment of ReLU; it is an inference graph, so those act types are left out of
``train``. Ratios are against ``relu`` and, where measured, ``relu-mkldnn``.

``--builds native,avx2`` measures each build of the native ATAC gate in a child process
(a process loads one build): ``native`` as the machine builds it, ``avx2`` without AVX-512
(``GLUON_ATAC_CXXFLAGS=-mno-avx512f``, what every CPU without AVX-512 gets), ``avx2-cpu``
the same with oneDNN held to AVX2 as well (``DNNL_MAX_CPU_ISA=AVX2``: the ReLU network and
the convolutions then run as on a CPU without AVX-512), one after the other in the same
run; each child times all act types interleaved, so its ratios compare its build with the
same run's ReLU and Gluon graph.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import mxnet as mx
from mxnet import autograd, gluon

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from gluon_atac import get_model, get_model_config, ops  # noqa: E402  (path set up above)
from gluon_atac.utils.argv import without_options  # noqa: E402
from gluon_atac.nn import set_fused  # noqa: E402

GLUON_SUFFIX = '-gluon'
MKLDNN_SUFFIX = '-mkldnn'
BASELINES = ('relu', 'relu' + MKLDNN_SUFFIX)
# Each build --builds can measure: compiler flags appended to the defaults (build.py), and
# the environment of its child. oneDNN's DNNL_MAX_CPU_ISA caps the convolutions too, so
# 'avx2-cpu' runs the whole network as a CPU without AVX-512 would, not just the gate.
BUILDS = {'native': ('', {}),
          'avx2': ('-mno-avx512f', {}),
          'avx2-cpu': ('-mno-avx512f', {'DNNL_MAX_CPU_ISA': 'AVX2'})}


def add_network_flags(p):
    """Flags of the networks :func:`build` makes (model, act types, batch, sizes)."""
    p.add_argument('--model', default='cifar_resnet20_v2')
    p.add_argument('--act-types', default='relu,chaatac',
                   help='comma separated; "<name>-gluon" disables the native ATAC operators')
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--input-size', type=int, default=None,
                   help="default: the model's registered input size")
    p.add_argument('--classes', type=int, default=None,
                   help="default: the model's registered classes")
    p.add_argument('--r', type=int, default=2)
    p.add_argument('--act-layers', type=int, default=None, help='host default if unset')


def parse_args(argv=None):
    """Command line of the benchmark (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_network_flags(p)
    p.add_argument('--ctx', default='cpu', help="'cpu' or 'gpu(0)'")
    p.add_argument('--mode', default='infer,train', help='infer, train or both')
    p.add_argument('--warmup', type=int, default=3, help='untimed iterations per model')
    p.add_argument('--windows', type=int, default=5, help='timed windows per model')
    p.add_argument('--iters', type=int, default=5, help='iterations per timed window')
    p.add_argument('--no-memory', action='store_true',
                   help='skip the peak-memory probe (one subprocess per act type)')
    p.add_argument('--json', default=None, help='write the results to this file')
    p.add_argument('--profile', default=None,
                   help='write mx.profiler aggregate statistics of every act type and mode '
                        'to this text file')
    p.add_argument('--builds', default=None,
                   help='comma separated builds of the native gate to measure, each in a '
                        'child process: %s' % ', '.join(sorted(BUILDS)))
    p.add_argument('--rss-probe', default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def parse_ctx(text):
    """``'cpu'``, ``'gpu(1)'`` or ``'gpu1'`` -> :class:`mxnet.Context`."""
    text = text.strip().lower()
    kind = text.rstrip('()0123456789')
    digits = ''.join(ch for ch in text[len(kind):] if ch.isdigit())
    if kind not in ('cpu', 'gpu'):
        raise ValueError('unknown context %r' % text)
    return mx.Context(kind, int(digits or 0))


def split_act(act_type):
    """``(name, fused, mkldnn)`` of an act type such as ``chaatac-gluon-mkldnn``."""
    mkldnn = act_type.endswith(MKLDNN_SUFFIX)
    if mkldnn:
        act_type = act_type[:-len(MKLDNN_SUFFIX)]
    fused = not act_type.endswith(GLUON_SUFFIX)
    return (act_type if fused else act_type[:-len(GLUON_SUFFIX)]), fused, mkldnn


def build(args, act_type, ctx):
    """Initialized, hybridized network for one act type (``-gluon`` disables fusion;
    ``-mkldnn`` is left to :class:`Runner`, which has the data ``optimize_for`` needs)."""
    name, fused, _ = split_act(act_type)
    kwargs = dict(act_type=name, r=args.r, classes=args.classes)
    if args.act_layers is not None:
        kwargs['act_layers'] = args.act_layers
    net = get_model(args.model, **kwargs)
    if not fused:
        set_fused(net, False)
    net.initialize(mx.init.MSRAPrelu(), ctx=ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    return net


class Runner:
    """One network with its data, loss and trainer; ``step(mode)`` runs one iteration."""

    def __init__(self, args, act_type, ctx, net=None):
        # benchmarks/baselines.py passes networks of other hosts, built and initialized.
        self.net = build(args, act_type, ctx) if net is None else net
        shape = (args.batch_size, 3, args.input_size, args.input_size)
        self.x = mx.nd.random.uniform(-1, 1, shape=shape, ctx=ctx)
        self.inference_only = split_act(act_type)[2]
        if self.inference_only:
            self.net.optimize_for(self.x, backend='MKLDNN', static_alloc=True,
                                  static_shape=True)
        self.y = mx.nd.random.randint(0, args.classes, shape=(args.batch_size,),
                                      ctx=ctx).astype('float32')
        self.loss = gluon.loss.SoftmaxCrossEntropyLoss()
        self.trainer = gluon.Trainer(self.net.collect_params(), 'nag',
                                     {'learning_rate': 0.01, 'momentum': 0.9, 'wd': 1e-4})
        self.batch_size = args.batch_size

    def step(self, mode):
        if mode == 'infer':
            return self.net(self.x)
        with autograd.record():
            loss = self.loss(self.net(self.x), self.y)
        loss.backward()
        self.trainer.step(self.batch_size)
        return loss

    def run(self, mode, iters):
        """Seconds for ``iters`` iterations, synchronized at both ends."""
        mx.nd.waitall()
        start = time.perf_counter()
        for _ in range(iters):
            self.step(mode)
        mx.nd.waitall()
        return time.perf_counter() - start


def interleaved(runners, mode, args):
    """``{label: {'images_per_s', 'windows_images_per_s'}}`` of ``runners`` (label ->
    :class:`Runner`) in ``mode``: each warmed up, then ``args.windows`` timed windows of
    ``args.iters`` iterations, one window of each runner in turn; the median counts."""
    for runner in runners.values():
        runner.run(mode, args.warmup)
    windows = {label: [] for label in runners}
    for _ in range(args.windows):
        for label, runner in runners.items():
            windows[label].append(runner.run(mode, args.iters))
    out = {}
    for label, seconds in windows.items():
        ips = [args.batch_size * args.iters / t for t in seconds]
        out[label] = {'images_per_s': statistics.median(ips), 'windows_images_per_s': ips}
    return out


def measure(args, ctx):
    """Images/s per mode and act type, interleaved windows, median of each."""
    runners = {act: Runner(args, act, ctx) for act in args.act_types}
    results = {}
    for mode in args.modes:
        acts = [a for a in args.act_types if mode == 'infer' or not runners[a].inference_only]
        results[mode] = interleaved({act: runners[act] for act in acts}, mode, args)
        for name in BASELINES:
            if name not in results[mode]:
                continue
            base, key = results[mode][name], name.replace('-', '_')
            for act in acts:
                row = results[mode][act]
                row['ratio_vs_' + key] = row['images_per_s'] / base['images_per_s']
                # window i of every act type ran back to back, so its ratio cancels the
                # machine's slower drifts; the quartiles show how far one run can be trusted
                quarts = quartiles([a / b for a, b in zip(row['windows_images_per_s'],
                                                          base['windows_images_per_s'])])
                row[('paired_ratio_quartiles' if name == 'relu'
                     else 'paired_ratio_quartiles_vs_' + key)] = quarts
    return results


def measure_builds(args, argv):
    """The report of each build in ``args.builds``, each from a child process of this
    script with that build's compiler flags (and its own library in the cache)."""
    out = {}
    for name in args.builds:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'report.json')
            flags, extra_env = BUILDS[name]
            env = dict(os.environ, GLUON_ATAC_CXXFLAGS=flags, **extra_env)
            env.pop('GLUON_ATAC_FUSED', None)
            cmd = ([sys.executable, os.path.abspath(__file__)]
                   + without_options(argv, ('--json', '--profile', '--builds'))
                   + ['--json', path])
            proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                raise RuntimeError('build %s failed:\n%s' % (name, proc.stderr[-2000:]))
            with open(path) as f:
                out[name] = json.load(f)
        out[name]['build_flags'] = BUILDS[name][0]
        out[name]['build_env'] = BUILDS[name][1]
    return out


def save_report(path, report):
    """``report`` as indented JSON at ``path``, if a path was given (``--json``)."""
    if path:
        with open(path, 'w') as f:
            json.dump(report, f, indent=2)


def quartiles(values):
    """First quartile, median and third quartile of ``values``."""
    if len(values) < 2:
        return [values[0]] * 3
    q1, q2, q3 = statistics.quantiles(values, n=4, method='inclusive')
    return [q1, q2, q3]


def profile(args, ctx, path):
    """Aggregate mx.profiler statistics (operators by total time) per act type and mode."""
    sections = []
    for act in args.act_types:
        runner = Runner(args, act, ctx)
        for mode in args.modes:
            runner.run(mode, args.warmup)
            mx.profiler.set_config(profile_all=True, aggregate_stats=True,
                                   filename=path + '.trace.json')
            mx.profiler.set_state('run')
            seconds = runner.run(mode, args.iters)
            mx.profiler.set_state('stop')
            table = mx.profiler.dumps(reset=True, format='table', sort_by='total')
            sections.append('## %s, %s: %d iterations of batch %d in %.3f s (profiled)\n%s'
                            % (act, mode, args.iters, args.batch_size, seconds, table))
    with open(path, 'w') as f:
        f.write('\n\n'.join(sections))


def _status_mb(field):
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in MiB (per address space, so a
    child's figure is its own, unlike ``ru_maxrss`` which survives ``exec``)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError('%s not in /proc/self/status' % field)


def rss_probe(args, ctx):
    """Child-process entry: peak RSS while a few training steps of one act type run."""
    runner = Runner(args, args.rss_probe, ctx)
    runner.run('infer', 1)
    before = _status_mb('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset the peak (VmHWM) to the current RSS
    runner.run('train', 3)
    print(json.dumps({'peak_rss_mb': _status_mb('VmHWM'), 'before_train_mb': before}))


def memory(args, argv):
    """Peak RSS of a training step for each act type, each in a fresh process.

    The probes run concurrently: resident memory is per process, so they do not disturb
    each other's figure.
    """
    procs = {}
    for act in [a for a in args.act_types if not split_act(a)[2]]:
        cmd = [sys.executable, os.path.abspath(__file__)] + list(argv) + ['--rss-probe', act]
        procs[act] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
    out = {}
    for act, proc in procs.items():
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError('memory probe for %s failed:\n%s' % (act, stderr[-2000:]))
        out[act] = json.loads(stdout.strip().splitlines()[-1])
    return out


def main(argv=None):
    """Run the benchmark and print (and optionally save) the table."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    config = get_model_config(args.model)
    args.input_size = args.input_size or config.input_size
    args.classes = args.classes or config.classes
    args.act_types = [a.strip() for a in args.act_types.split(',') if a.strip()]
    args.modes = [m.strip() for m in args.mode.split(',') if m.strip()]
    bad = set(args.modes) - {'infer', 'train'}
    if bad:
        raise SystemExit('unknown mode(s): %s' % ', '.join(sorted(bad)))
    ctx = parse_ctx(args.ctx)
    if args.builds:
        args.builds = [b.strip() for b in args.builds.split(',') if b.strip()]
        unknown = set(args.builds) - set(BUILDS)
        if unknown:
            raise SystemExit('unknown build(s): %s (known: %s)'
                             % (', '.join(sorted(unknown)), ', '.join(sorted(BUILDS))))
        report = {'builds': measure_builds(args, argv)}
        for name, sub in report['builds'].items():
            print('## build %s (GLUON_ATAC_CXXFLAGS=%r%s)'
                  % (name, sub['build_flags'],
                     ''.join(', %s=%s' % kv for kv in sub['build_env'].items())))
            print_report(sub)
        save_report(args.json, report)
        return report
    if args.rss_probe:
        rss_probe(args, ctx)
        return None
    report = {'model': args.model, 'batch_size': args.batch_size,
              'input_size': args.input_size, 'ctx': str(ctx), 'r': args.r,
              'act_layers': args.act_layers,
              'omp_num_threads': os.environ.get('OMP_NUM_THREADS'),
              # set: oneDNN's convolutions are held to that instruction set
              'dnnl_max_cpu_isa': os.environ.get('DNNL_MAX_CPU_ISA'),
              'windows': args.windows, 'iters': args.iters,
              'throughput': measure(args, ctx)}
    library = ops.load()
    # which build the ATAC rows ran: None means the Gluon graph (see ops.choose)
    report['native_gate'] = ops.library_isa(library) if library else None
    if 'train' in args.modes and not args.no_memory:
        report['train_memory'] = memory(args, without_options(argv, ('--json', '--profile')))
    print_report(report)
    if args.profile:
        profile(args, ctx, args.profile)
    save_report(args.json, report)
    return report


def print_report(report):
    """Human-readable table of ``report``."""
    print('%s  batch %d  input %d  %s  OMP_NUM_THREADS=%s  native gate: %s  oneDNN: %s' % (
        report['model'], report['batch_size'], report['input_size'], report['ctx'],
        report['omp_num_threads'], report.get('native_gate') or 'off',
        report.get('dnnl_max_cpu_isa') or 'all instruction sets'))
    for mode, rows in report['throughput'].items():
        for act, row in rows.items():
            ratio = ''
            if 'ratio_vs_relu' in row:
                q1, _, q3 = row['paired_ratio_quartiles']
                ratio = '  ratio %.3f (paired windows %.3f-%.3f)' % (row['ratio_vs_relu'], q1, q3)
            if 'ratio_vs_relu_mkldnn' in row:
                q1, _, q3 = row['paired_ratio_quartiles_vs_relu_mkldnn']
                ratio += '  vs relu-mkldnn %.3f (%.3f-%.3f)' % (row['ratio_vs_relu_mkldnn'],
                                                             q1, q3)
            print('  %-5s %-20s %9.1f img/s%s' % (mode, act, row['images_per_s'], ratio))
    for act, mem in report.get('train_memory', {}).items():
        print('  train peak RSS %-16s %8.1f MiB (%.1f MiB before the first step)'
              % (act, mem['peak_rss_mb'], mem['before_train_mb']))


if __name__ == '__main__':
    main()
