"""The throughput benchmark runs end to end on a tiny configuration (no timing asserted)."""
import json
import os
import runpy

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'benchmarks',
                      'throughput.py')


@pytest.fixture(scope='module')
def bench():
    return runpy.run_path(SCRIPT, run_name='throughput')


def test_tiny_run_reports_ratios_memory_and_json(bench, tmp_path, capsys):
    out = tmp_path / 'bench.json'
    bench['main'](['--model', 'cifar_resnet8_v2', '--act-types', 'relu,chaatac-gluon',
                   '--batch-size', '2', '--input-size', '8', '--warmup', '1', '--windows', '2',
                   '--iters', '1', '--json', str(out)])
    report = json.loads(out.read_text())
    for mode in ('infer', 'train'):
        rows = report['throughput'][mode]
        assert set(rows) == {'relu', 'chaatac-gluon'}
        assert rows['relu']['ratio_vs_relu'] == pytest.approx(1.0)
        assert all(row['images_per_s'] > 0 and len(row['windows_images_per_s']) == 2
                   for row in rows.values())
        assert rows['relu']['paired_ratio_quartiles'] == pytest.approx([1.0] * 3)
        for row in rows.values():
            q1, q2, q3 = row['paired_ratio_quartiles']
            assert 0 < q1 <= q2 <= q3
    assert set(report['train_memory']) == {'relu', 'chaatac-gluon'}
    assert all(m['peak_rss_mb'] > 0 for m in report['train_memory'].values())
    printed = capsys.readouterr().out
    assert 'ratio' in printed and 'paired windows' in printed and 'peak RSS' in printed


def test_bad_mode_and_context_are_rejected(bench):
    with pytest.raises(SystemExit):
        bench['main'](['--mode', 'fly', '--no-memory'])
    with pytest.raises(ValueError):
        bench['parse_ctx']('tpu(0)')
    assert str(bench['parse_ctx']('gpu(1)')) == 'gpu(1)'


@pytest.mark.slow
def test_builds_measure_the_avx2_library_next_to_relu_on_onednn(bench, tmp_path, capsys):
    out = tmp_path / 'builds.json'
    bench['main'](['--model', 'cifar_resnet8_v2', '--act-types', 'relu,relu-mkldnn,chaatac',
                   '--batch-size', '2', '--input-size', '8', '--warmup', '1', '--windows', '2',
                   '--iters', '1', '--no-memory', '--builds', 'avx2,avx2-cpu',
                   '--json', str(out)])
    report = json.loads(out.read_text())
    assert set(report['builds']) == {'avx2', 'avx2-cpu'}
    child = report['builds']['avx2']
    # the child loaded the library built without AVX-512, not this process's build
    assert child['build_flags'] == '-mno-avx512f' and child['native_gate'] == 'avx2'
    assert child['dnnl_max_cpu_isa'] == os.environ.get('DNNL_MAX_CPU_ISA')
    # avx2-cpu: the same library, and oneDNN held to AVX2 in that child only
    cpu = report['builds']['avx2-cpu']
    assert cpu['native_gate'] == 'avx2' and cpu['dnnl_max_cpu_isa'] == 'AVX2'
    infer, train = child['throughput']['infer'], child['throughput']['train']
    assert set(infer) == {'relu', 'relu-mkldnn', 'chaatac'}
    assert set(train) == {'relu', 'chaatac'}  # the oneDNN subgraph graph is inference only
    assert infer['relu-mkldnn']['ratio_vs_relu_mkldnn'] == pytest.approx(1.0)
    for row in infer.values():
        assert row['ratio_vs_relu'] > 0 and row['ratio_vs_relu_mkldnn'] > 0
        q1, q2, q3 = row['paired_ratio_quartiles_vs_relu_mkldnn']
        assert 0 < q1 <= q2 <= q3
    printed = capsys.readouterr().out
    assert "## build avx2 (GLUON_ATAC_CXXFLAGS='-mno-avx512f')" in printed
    assert ("## build avx2-cpu (GLUON_ATAC_CXXFLAGS='-mno-avx512f', DNNL_MAX_CPU_ISA=AVX2)"
            in printed)
    assert 'oneDNN: AVX2' in printed
    assert 'native gate: avx2' in printed and 'vs relu-mkldnn' in printed


def test_unknown_build_is_rejected(bench):
    with pytest.raises(SystemExit, match='unknown build'):
        bench['main'](['--builds', 'sse9', '--no-memory'])
