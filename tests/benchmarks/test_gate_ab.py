"""The A/B benchmark of two gate sources compiles both under other names, loads them into
one process and times the same network on each."""
import json
import os
import runpy

import pytest

from gluon_atac.ops import build as ops_build

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'benchmarks',
                      'gate_ab.py')


@pytest.fixture(scope='module')
def bench():
    return runpy.run_path(SCRIPT, run_name='gate_ab')


@pytest.mark.slow
def test_a_variant_runs_beside_the_packaged_gate(bench, tmp_path, capsys):
    # The variant: one Newton step of the sigmoid's reciprocal instead of two in the AVX2
    # build; its outputs stay within float32 rounding of the packaged source's.
    with open(ops_build.SOURCE) as f:
        code = f.read()
    step = '  r = r + r * (splat(1.0f) - d * r);\n  return r + r * (splat(1.0f) - d * r);'
    assert step in code
    variant = tmp_path / 'variant.cc'
    variant.write_text(code.replace(step, '  return r + r * (splat(1.0f) - d * r);'))
    out = tmp_path / 'ab.json'
    before = os.environ.get('GLUON_ATAC_CXXFLAGS')
    bench['main'](['--b', str(variant), '--cxxflags=-mno-avx512f', '--model',
                   'cifar_resnet8_v2', '--batch-size', '2', '--input-size', '8', '--warmup',
                   '1', '--windows', '2', '--iters', '1', '--json', str(out)])
    report = json.loads(out.read_text())
    # the flags reached both builds and nothing else (the environment this process builds
    # its own library from is as it was)
    assert report['isa'] != 'avx512' and report['cxxflags'] == '-mno-avx512f'
    assert os.environ.get('GLUON_ATAC_CXXFLAGS') == before
    assert report['a'] == os.path.abspath(ops_build.SOURCE)
    assert 0 <= report['max_abs_output_diff'] <= 1e-5 * report['output_scale']
    assert report['output_scale'] > 0
    q1, q2, q3 = report['b_over_a_time_quartiles']
    assert 0 < q1 <= q2 <= q3
    assert all(v > 0 for v in report['images_per_s'].values())
    assert 'B/A time' in capsys.readouterr().out


def test_a_source_that_is_not_the_gate_is_refused(bench, tmp_path):
    other = tmp_path / 'other.cc'
    other.write_text('int main() { return 0; }\n')
    with pytest.raises(SystemExit, match='no REGISTER_OP\\(atac_gate\\) to rename'):
        bench['main'](['--b', str(other), '--model', 'cifar_resnet8_v2'])
