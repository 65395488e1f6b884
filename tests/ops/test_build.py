"""Building, caching and loading the native library: concurrent first builds, a build
without AVX-512, damaged caches and unwritable ones. Each case runs in fresh processes
(a process loads one library build into MXNet, once)."""
import json
import os
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from gluon_atac import ops

pytestmark = pytest.mark.skipif(shutil.which('g++') is None, reason='no C++ compiler')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Loads the library (twice: the second call must neither build nor log), then runs one
# fused unit and the same unit on the Gluon graph; prints what it loaded, the path the unit
# took, the largest difference, the ATAC warnings and what the loader logged.
CHILD = r'''
import json, logging, warnings
import mxnet as mx, numpy as np
from gluon_atac import ops
from gluon_atac.nn import ChaATAC, gluon_graph
records = []
handler = logging.Handler()
handler.emit = records.append
logging.getLogger('gluon_atac.ops.build').addHandler(handler)
logging.getLogger('gluon_atac.ops.build').setLevel(logging.INFO)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    library = ops.load()
    ops.load()
mx.random.seed(0)
unit = ChaATAC(16)
unit.initialize(mx.init.Normal(0.5))
x = mx.nd.array(np.random.RandomState(0).normal(0, 1, (2, 16, 5, 5)))
path, y = unit._native_path(), unit(x).asnumpy()
with gluon_graph(unit):
    ref = unit(x).asnumpy()
print(json.dumps({'library': library, 'path': path, 'y': float(y.sum()),
                  'error': float(np.abs(y - ref).max()),
                  'warnings': [str(w.message) for w in caught if 'ATAC' in str(w.message)],
                  'log': [r.getMessage() for r in records]}))
'''

NO_AVX512 = '-mno-avx512f'


def child_env(cache, **extra):
    env = dict(os.environ, GLUON_ATAC_CACHE=cache, GLUON_ATAC_CXXFLAGS=NO_AVX512,
               OMP_NUM_THREADS='1')
    env.pop('GLUON_ATAC_FUSED', None)
    env.update(extra)
    return env


def start_child(env, prefix=()):
    return subprocess.Popen(list(prefix) + [sys.executable, '-c', CHILD], env=env, cwd=ROOT,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc):
    """The child's report; its exit code must be 0 (no crash, no traceback)."""
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def libraries(cache):
    return sorted(name for name in os.listdir(cache) if name.endswith('.so'))


@pytest.fixture(scope='module')
def shared_build(tmp_path_factory):
    """Four processes started at once on an empty cache, building without AVX-512: the
    cache directory and their reports. The one compile this module pays for."""
    cache = str(tmp_path_factory.mktemp('cache'))
    procs = [start_child(child_env(cache)) for _ in range(4)]
    return cache, [finish(proc) for proc in procs]


@pytest.mark.slow
def test_four_processes_on_an_empty_cache_share_one_working_build(shared_build):
    cache, reports = shared_build
    assert len({r['library'] for r in reports}) == 1
    library = reports[0]['library']
    assert os.path.dirname(library) == cache
    # the one library, its build record and lock; no temporary files left behind
    assert sorted(os.listdir(cache)) == sorted(
        [os.path.basename(library) + suffix for suffix in ('', '.json', '.lock')])
    assert ops.is_valid_library(library)
    with open(library + '.json') as f:
        assert json.load(f)['flags'][-1] == NO_AVX512
    assert ops.library_isa(library) == 'avx2'
    for report in reports:
        assert report['path'] == 'gate' and report['warnings'] == []
        assert report['log'] == ['fused ATAC gate: native operator (avx2 build)']
        assert report['error'] < 1e-5
        assert report['y'] == reports[0]['y'] and np.isfinite(report['y'])


@pytest.mark.slow
def test_build_without_avx512_matches_the_gluon_graph(shared_build):
    """The equivalence checks (outputs, gradients, running statistics) on that build."""
    cache, _ = shared_build
    checks = ['test_training_step_matches_gluon[shape1-True-True]',
              'test_training_step_matches_gluon[shape2-False-False]',
              'test_inference_and_its_gradient_are_exact[False]',
              'test_several_tiles_and_ragged_tails_match_gluon',
              'test_saturated_gates_give_zero_and_one_not_nan']
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider']
        + ['tests/nn/test_fused_atac.py::' + name for name in checks],
        env=child_env(cache), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1].startswith('8 passed')
    assert len(libraries(cache)) == 1  # it ran on the shared build, not a new one


def test_selection_takes_the_native_gate_on_avx512_and_avx2_only():
    """The choice per instruction set and GLUON_ATAC_FUSED setting (no build, no timing)."""
    for isa in ('avx512', 'avx2'):
        assert ops.choose(isa) == (True, 'fused ATAC gate: native operator (%s build)' % isa)
    chosen, reason = ops.choose('generic')
    assert not chosen
    assert reason.startswith('fused ATAC gate: Gluon graph, the generic build')
    assert ops.choose('generic', 'force')[0] and 'forced' in ops.choose('generic', 'force')[1]
    assert set(ops.FAST_ISAS) == {'avx512', 'avx2'}


@pytest.mark.slow
def test_a_build_without_avx2_is_not_chosen_unless_forced_and_then_exact(tmp_path):
    """What a CPU without AVX2 and FMA gets: the Gluon graph, said once in the log; forced,
    the same library (128-bit halves, division in the sigmoid) still computes the gate."""
    cache = str(tmp_path / 'cache')
    flags = NO_AVX512 + ' -mno-avx2 -mno-fma -mno-avx'
    report = finish(start_child(child_env(cache, GLUON_ATAC_CXXFLAGS=flags)))
    assert report['library'] is None and report['path'] is None and report['warnings'] == []
    assert len(report['log']) == 1
    assert report['log'][0].startswith('fused ATAC gate: Gluon graph, the generic build')
    assert ops.library_isa(os.path.join(cache, libraries(cache)[0])) == 'generic'
    forced = finish(start_child(child_env(cache, GLUON_ATAC_CXXFLAGS=flags,
                                          GLUON_ATAC_FUSED='force')))
    assert forced['path'] == 'gate' and forced['error'] < 1e-5
    assert forced['log'] == ['fused ATAC gate: native operator (generic build, forced by '
                             'GLUON_ATAC_FUSED=force)']
    assert len(libraries(cache)) == 1  # the forced run loaded the same build


def damaged_cache(shared_build, tmp_path, damage):
    """A copy of the shared cache whose library is the first half of itself ('truncated')
    or another shared object ('foreign'), under its own build record."""
    cache, reports = shared_build
    name = os.path.basename(reports[0]['library'])
    copy = str(tmp_path / 'cache')
    os.makedirs(copy)
    shutil.copy(os.path.join(cache, name + '.json'), copy)
    if damage == 'truncated':
        with open(os.path.join(cache, name), 'rb') as f:
            data = f.read()
        with open(os.path.join(copy, name), 'wb') as f:
            f.write(data[:len(data) // 2])
    else:
        shutil.copy(np.core._multiarray_umath.__file__, os.path.join(copy, name))
    return copy, os.path.join(cache, name)


@pytest.mark.slow
def test_truncated_library_is_rebuilt_with_a_warning(shared_build, tmp_path):
    """Loading it would kill the process with SIGBUS. The stand-in compiler copies the good
    build, so the rebuild costs no compile; a real compiler is what shared_build used."""
    cache, good = damaged_cache(shared_build, tmp_path, 'truncated')
    compiler = tmp_path / 'copying-compiler'
    compiler.write_text('#!/bin/sh\nwhile [ $# -gt 1 ]; do\n'
                        '  if [ "$1" = -o ]; then cp "%s" "$2"; fi\n  shift\ndone\n' % good)
    compiler.chmod(0o755)
    report = finish(start_child(child_env(cache, CXX=str(compiler))))
    assert report['path'] == 'gate' and report['error'] < 1e-5
    assert ops.is_valid_library(report['library'])
    assert len(report['warnings']) == 1
    assert 'is damaged or foreign' in report['warnings'][0]
    assert 'rebuilding' in report['warnings'][0]


@pytest.mark.slow
def test_foreign_library_without_a_compiler_falls_back_with_a_warning(shared_build, tmp_path):
    cache, _ = damaged_cache(shared_build, tmp_path, 'foreign')
    report = finish(start_child(child_env(cache, CXX=shutil.which('false'))))
    assert report['library'] is None and report['path'] is None
    assert report['error'] == 0.0
    assert len(report['warnings']) == 2
    assert 'is damaged or foreign' in report['warnings'][0]
    assert report['warnings'][1].startswith('fused ATAC gate unavailable, using the Gluon '
                                            'graph: building the fused ATAC gate failed')
    assert '\n' not in report['warnings'][1]


def test_read_only_cache_falls_back_to_the_gluon_graph_with_a_warning(tmp_path):
    """Root writes through permissions: as root the child runs without that capability."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which('setpriv') is None:
            pytest.skip('running as root without setpriv to drop CAP_DAC_OVERRIDE')
        prefix = ['setpriv', '--bounding-set', '-dac_override,-dac_read_search']
    cache = str(tmp_path / 'read-only')
    os.makedirs(cache)
    os.chmod(cache, 0o555)
    try:
        report = finish(start_child(child_env(cache), prefix))
    finally:
        os.chmod(cache, 0o755)
    assert report['library'] is None and report['path'] is None
    assert report['error'] == 0.0
    assert report['warnings'] == [
        'fused ATAC gate unavailable, using the Gluon graph: cannot write the library cache '
        '%s (Permission denied); set GLUON_ATAC_CACHE to a writable directory' % cache]


def test_source_does_not_build_without_the_mode_threshold():
    """The threshold has one definition, in build.py; the C++ has no fallback value."""
    mxdir = os.path.dirname(mx.__file__)
    flags = [f for f in ops.compiler_flags() if not f.startswith('-DATAC_MODE_THRESHOLD=')]
    proc = subprocess.run(
        ['g++', '-E'] + flags + ['-I', os.path.join(mxdir, 'include', 'mxnet'),
                                 '-I', os.path.join(mxdir, 'include'),
                                 ops.build.SOURCE, '-o', os.devnull],
        capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'build with gluon_atac/ops/build.py, which defines ATAC_MODE_THRESHOLD' in proc.stderr
    assert '-DATAC_MODE_THRESHOLD=%r' % ops.MODE_THRESHOLD in ops.compiler_flags()
