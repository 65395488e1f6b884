"""Two builds of the native ATAC gate timed against each other in one process.

Separate processes are a poor judge of a kernel change on a small virtual machine: the
same library measured 6.4 to 8.0 ms per step of one unit from one process to the next.
This script compiles two sources of ``atac_gate.cc`` (``--a``, default this package's, and
``--b``, the variant) under the operator names ``atac_gate_a`` and ``atac_gate_b``, loads
both, builds the same network twice with the same weights and data, points the ATAC units
of each at one build (:attr:`gluon_atac.nn.ChaATAC.native_op`) and times them in
interleaved windows (order alternating), like ``throughput.py``. It prints how far the two
networks' outputs differ and the median B/A time ratio of paired windows with its
interquartile range; run it with ``--b`` equal to ``--a`` to see the machine's noise.

Example
-------
::

    OMP_NUM_THREADS=2 python benchmarks/gate_ab.py --b /tmp/variant.cc \\
        --cxxflags=-mno-avx512f --mode train
"""
import argparse
import os
import shlex
import statistics
import sys
import tempfile

import mxnet as mx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from throughput import Runner, add_network_flags, build, quartiles, save_report  # noqa: E402
from gluon_atac import get_model_config  # noqa: E402  (paths set up above)
from gluon_atac.nn import ChaATAC  # noqa: E402
from gluon_atac.ops import build as ops_build  # noqa: E402

REGISTRATION = 'REGISTER_OP(atac_gate)'


def renamed_source(source, tag, workdir):
    """``source`` with its operator renamed ``atac_gate_<tag>``, written to ``workdir``."""
    with open(source) as f:
        code = f.read()
    if REGISTRATION not in code:
        raise SystemExit('%s: no %s to rename; is it a source of atac_gate?'
                         % (source, REGISTRATION))
    renamed = os.path.join(workdir, 'atac_gate_%s.cc' % tag)
    with open(renamed, 'w') as f:
        f.write(code.replace(REGISTRATION, 'REGISTER_OP(atac_gate_%s)' % tag))
    return renamed


def load_variant(renamed, tag, workdir, cxxflags):
    """Compile (the package's flags, then ``cxxflags``) and load a renamed source; the
    name of its operator and the instruction set it was built for."""
    path = ops_build.build_library(os.path.join(workdir, 'libatac_gate_%s.so' % tag),
                                   source=renamed,
                                   flags=ops_build.FLAGS + shlex.split(cxxflags))
    mx.library.load(path, verbose=False)
    return 'atac_gate_' + tag, ops_build.library_isa(path)


def network(args, op, ctx):
    """The ATAC network with every unit on operator ``op``, seeded alike for A and B."""
    mx.random.seed(args.seed)
    net = build(args, args.act_types[0], ctx)  # hybridized lazily: traced on first call
    units = []
    net.apply(lambda b: units.append(b) if isinstance(b, ChaATAC) else None)
    for unit in units:
        unit.native_op = op
    return net


def main(argv=None):
    """Compile, load and time both builds; print (and optionally save) the result."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_network_flags(p)
    p.set_defaults(act_types='chaatac')
    p.add_argument('--a', default=ops_build.SOURCE, help='baseline source (default: the '
                   "package's atac_gate.cc)")
    p.add_argument('--b', required=True, help='variant source')
    p.add_argument('--cxxflags', default='', help='extra compiler flags of both builds '
                   '(as GLUON_ATAC_CXXFLAGS, e.g. -mno-avx512f)')
    p.add_argument('--mode', choices=('train', 'infer'), default='train')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--windows', type=int, default=12)
    p.add_argument('--iters', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', default=None)
    args = p.parse_args(argv)
    args.act_types = [args.act_types.split(',')[0].strip()]
    config = get_model_config(args.model)
    args.input_size = args.input_size or config.input_size
    args.classes = args.classes or config.classes
    ctx = mx.cpu()
    with tempfile.TemporaryDirectory() as workdir:
        # both checked before either is compiled
        sources = {tag: renamed_source(src, tag, workdir)
                   for tag, src in (('a', args.a), ('b', args.b))}
        built = {tag: load_variant(src, tag, workdir, args.cxxflags)
                 for tag, src in sources.items()}
        ops = {tag: op for tag, (op, _) in built.items()}
        runners = {tag: Runner(args, args.act_types[0], ctx, net=network(args, op, ctx))
                   for tag, op in ops.items()}
        runners['b'].x, runners['b'].y = runners['a'].x, runners['a'].y
        outputs = [runners[tag].net(runners['a'].x) for tag in 'ab']
        diff = float((outputs[0] - outputs[1]).abs().max().asscalar())
        scale = float(outputs[0].abs().max().asscalar())
        for runner in runners.values():
            runner.run(args.mode, args.warmup)
        seconds = {'a': [], 'b': []}
        for window in range(args.windows):
            for tag in ('ab' if window % 2 == 0 else 'ba'):
                seconds[tag].append(runners[tag].run(args.mode, args.iters))
    ratios = [b / a for a, b in zip(seconds['a'], seconds['b'])]
    report = {'model': args.model, 'act_type': args.act_types[0], 'mode': args.mode,
              'batch_size': args.batch_size, 'cxxflags': args.cxxflags,
              'isa': built['a'][1],
              'a': os.path.abspath(args.a), 'b': os.path.abspath(args.b),
              'max_abs_output_diff': diff, 'output_scale': scale,
              'images_per_s': {tag: args.iters * args.batch_size / statistics.median(s)
                               for tag, s in seconds.items()},
              'b_over_a_time_quartiles': quartiles(ratios)}
    q1, q2, q3 = report['b_over_a_time_quartiles']
    print('%s %s batch %d, %s, %s builds: outputs differ by at most %.3g (scale %.3g); '
          'A %.1f img/s, B %.1f img/s; B/A time %.3f (paired windows %.3f-%.3f)'
          % (args.model, args.act_types[0], args.batch_size, args.mode, report['isa'], diff,
             scale,
             report['images_per_s']['a'], report['images_per_s']['b'], q2, q1, q3))
    save_report(args.json, report)
    return report


if __name__ == '__main__':
    main()
