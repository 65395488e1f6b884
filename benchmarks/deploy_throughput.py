"""Inference throughput of the deployment runtimes: MXNet against ONNX Runtime.

For every act type one network is built, hybridized with static memory (ATAC on its
native operators, as :mod:`throughput` runs it) and exported to ONNX with
:func:`gluon_atac.utils.onnx_export.export_onnx`; ONNX Runtime then runs that file with as
many threads as MXNet has (``OMP_NUM_THREADS``). All networks live in one process and timed
windows run interleaved (MXNet relu, ONNX relu, MXNet atac, ONNX atac, ...), so clock and
cache drift hit all of them alike; the median window gives images/s. The ratio is ONNX
Runtime over MXNet per act type, with the interquartile range of the per-window ratios.

``--mkldnn`` adds MXNet with its oneDNN subgraph backend (``optimize_for(backend=
'MKLDNN')``: convolutions fused with BN and ReLU, ATAC on the Gluon graph, which the
backend can see into), the best MXNet deployment of ReLU. ``--int8`` adds both runtimes'
INT8 models, each made as ``gluon_atac.export --quantize int8`` makes it (MXNet's
``quantize_net_v2``; ONNX Runtime's static QDQ), calibrated on the benchmark's own random
batch: the timing does not depend on what the ranges are.

Examples
--------
::

    OMP_NUM_THREADS=2 python benchmarks/deploy_throughput.py --model cifar_resnet20_v2 \\
        --batch-size 128
    OMP_NUM_THREADS=2 python benchmarks/deploy_throughput.py --model resnet50_v1b \\
        --act-layers 2 --batch-size 16 --iters 3 --mkldnn --int8
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import mxnet as mx
import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(_HERE, os.pardir)]
from throughput import (add_network_flags, build, quartiles,  # noqa: E402 (paths above)
                        save_report)
from gluon_atac import get_model_config  # noqa: E402
from gluon_atac.commands.export import quantize_int8  # noqa: E402
from gluon_atac.nn import gluon_graph  # noqa: E402
from gluon_atac.utils.onnx_export import export_onnx, onnx_session  # noqa: E402
from gluon_atac.utils.onnx_quantize import quantize_static_int8  # noqa: E402


def parse_args(argv=None):
    """Command line of the benchmark (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_network_flags(p)
    p.add_argument('--warmup', type=int, default=3, help='untimed iterations per runtime')
    p.add_argument('--windows', type=int, default=7, help='timed windows per runtime')
    p.add_argument('--iters', type=int, default=5, help='iterations per timed window')
    p.add_argument('--mkldnn', action='store_true',
                   help="add MXNet with optimize_for(backend='MKLDNN')")
    p.add_argument('--int8', action='store_true',
                   help='add INT8 models of both runtimes')
    p.add_argument('--json', default=None, help='write the results to this file')
    return p.parse_args(argv)


def runtimes(args):
    """Names of the runtimes measured, in the order their windows run."""
    names = ['mxnet'] + (['mxnet-mkldnn'] if args.mkldnn else []) + ['onnxruntime']
    return names + (['mxnet-int8', 'onnxruntime-int8'] if args.int8 else [])


def speed_key(runtime):
    """The report's key of a runtime's images/s, e.g. ``mxnet_int8_images_per_s``."""
    return runtime.replace('-', '_') + '_images_per_s'


def runners(args, act, tmp):
    """``{runtime: run}`` for one act type (:func:`runtimes`); each run is one batch."""
    net = build(args, act, mx.cpu())
    shape = (args.batch_size, 3, args.input_size, args.input_size)
    x = np.random.RandomState(0).uniform(-1, 1, shape).astype(np.float32)
    data = mx.nd.array(x)
    path = export_onnx(net, os.path.join(tmp, act + '.onnx'), (1,) + shape[1:])
    sessions = {'onnxruntime': onnx_session(path)}
    nets = {'mxnet': net}
    if args.mkldnn:
        nets['mxnet-mkldnn'] = build(args, act, mx.cpu())
        with gluon_graph(nets['mxnet-mkldnn']):
            nets['mxnet-mkldnn'].optimize_for(data, backend='MKLDNN', static_alloc=True,
                                              static_shape=True)
    if args.int8:
        # a net of its own: quantizing traces its graph on the Gluon path
        nets['mxnet-int8'] = quantize_int8(build(args, act, mx.cpu()), [(data, None)])
        sessions['onnxruntime-int8'] = onnx_session(quantize_static_int8(
            path, os.path.join(tmp, act + '-int8.onnx'), [x]))
    name = sessions['onnxruntime'].get_inputs()[0].name
    out = {key: (lambda n=n: n(data).wait_to_read()) for key, n in nets.items()}
    out.update({key: (lambda s=s: s.run(None, {name: x})) for key, s in sessions.items()})
    return out


def timed(run, iters):
    """Seconds for ``iters`` calls of ``run``."""
    start = time.perf_counter()
    for _ in range(iters):
        run()
    return time.perf_counter() - start


def measure(args):
    """Images/s per act type and runtime, interleaved windows, median of each."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = {act: runners(args, act, tmp) for act in args.act_types}
    order = [(act, runtime) for act in args.act_types for runtime in runtimes(args)]
    for act, runtime in order:
        timed(runs[act][runtime], args.warmup)
    windows = {key: [] for key in order}
    for _ in range(args.windows):
        for act, runtime in order:
            seconds = timed(runs[act][runtime], args.iters)
            windows[act, runtime].append(args.batch_size * args.iters / seconds)
    results = {}
    for act in args.act_types:
        mxnet, onnx = windows[act, 'mxnet'], windows[act, 'onnxruntime']
        results[act] = {'mxnet_images_per_s': statistics.median(mxnet),
                        'onnxruntime_images_per_s': statistics.median(onnx),
                        'onnx_over_mxnet': statistics.median(onnx) / statistics.median(mxnet),
                        'paired_ratio_quartiles': quartiles(
                            [o / m for o, m in zip(onnx, mxnet)]),
                        'windows': {r: windows[act, r] for r in runtimes(args)}}
        for runtime in runtimes(args)[1:]:
            if runtime != 'onnxruntime':
                results[act][speed_key(runtime)] = statistics.median(windows[act, runtime])
    if 'relu' in args.act_types:
        # every runtime of every act type against each ReLU deployment, window by window
        for act in args.act_types:
            results[act]['vs_relu'] = {
                '%s/%s' % (r, base): quartiles([a / b for a, b in zip(
                    windows[act, r], windows['relu', base])])
                for r in runtimes(args) for base in runtimes(args)
                if r.endswith('int8') == base.endswith('int8')}
    return results


def cpu_name():
    """The CPU model as ``lscpu`` names it (``unknown`` without lscpu)."""
    try:
        out = subprocess.run(['lscpu'], stdout=subprocess.PIPE, universal_newlines=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'
    for line in out.splitlines():
        if line.startswith('Model name:'):
            return line.split(':', 1)[1].strip()
    return 'unknown'


def main(argv=None):
    """Run the benchmark and print (and optionally save) the table."""
    import onnxruntime

    args = parse_args(argv)
    config = get_model_config(args.model)
    args.input_size = args.input_size or config.input_size
    args.classes = args.classes or config.classes
    args.act_types = [a.strip() for a in args.act_types.split(',') if a.strip()]
    report = {'model': args.model, 'batch_size': args.batch_size,
              'input_size': args.input_size, 'act_layers': args.act_layers,
              'omp_num_threads': os.environ.get('OMP_NUM_THREADS'), 'cpu': cpu_name(),
              'mxnet': mx.__version__, 'onnxruntime': onnxruntime.__version__,
              'windows': args.windows, 'iters': args.iters, 'throughput': measure(args)}
    print('%s  batch %d  input %d  OMP_NUM_THREADS=%s  %s' % (
        report['model'], report['batch_size'], report['input_size'],
        report['omp_num_threads'], report['cpu']))
    for act, row in report['throughput'].items():
        q1, _, q3 = row['paired_ratio_quartiles']
        print('  %-10s MXNet %8.1f img/s   ONNX Runtime %8.1f img/s   ratio %.2f '
              '(paired windows %.2f-%.2f)' % (act, row['mxnet_images_per_s'],
                                               row['onnxruntime_images_per_s'],
                                               row['onnx_over_mxnet'], q1, q3))
        for runtime in runtimes(args)[1:]:
            if runtime != 'onnxruntime':
                print('  %-10s %-16s %8.1f img/s' % (act, runtime, row[speed_key(runtime)]))
    if 'relu' in report['throughput']:
        print('  paired ratios against ReLU (ATAC runtime / ReLU runtime: median, IQR):')
        for act, row in report['throughput'].items():
            if act == 'relu':
                continue
            for key, (q1, q2, q3) in row['vs_relu'].items():
                print('  %-10s %-34s %.3f (%.3f-%.3f)' % (act, key, q2, q1, q3))
    save_report(args.json, report)
    return report


if __name__ == '__main__':
    main()
