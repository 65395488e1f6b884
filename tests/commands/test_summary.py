"""``python -m gluon_atac.summary``: the counts table and its errors."""
import subprocess
import sys

from gluon_atac.commands.summary import summarize


def test_rows_against_relu_twin():
    rows = summarize('cifar_resnet20_v2', 32, act_type='ChaATAC', r=2, classes=100)
    assert [r['act_type'] for r in rows] == ['relu', 'ChaATAC']
    assert [r['total'] for r in rows] == [279520, 316160]
    assert rows[1]['macs'] - rows[0]['macs'] == 19 * 262144


def _run(*args):
    return subprocess.run([sys.executable, '-m', 'gluon_atac.summary'] + list(args),
                          capture_output=True, text=True)


def test_cli_prints_resnet50_table():
    out = _run('resnet50_v1b')
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[2].split() == ['relu', '25,610,152', '25,557,032', '4.089', '0.00',
                                '1.000', '1.000']
    assert lines[3].split() == ['ChaATAC', '28,006,312', '27,934,760', '4.397', '3.91',
                                '1.094', '1.075']


def test_cli_errors_are_one_line():
    for args, text in [(('cifar_resnet20_v2', '--r', '0'), 'r=0'),
                       (('cifar_resnet20_v2', '--act-type', 'foo'), "unknown act type 'foo'"),
                       (('resnet51_v1b',), "unknown model 'resnet51_v1b'")]:
        out = _run(*args)
        assert out.returncode == 2
        assert out.stderr.count('\n') == 1 and text in out.stderr
        assert 'Traceback' not in out.stderr


def test_cli_counts_the_papers_cifar_column_with_a_cifar100_head():
    for flags in (('--classes', '100'), ('--dataset', 'cifar100')):
        out = _run('cifar_resnet20_v2', *flags)
        assert out.returncode == 0, out.stderr
        rows = [line.split()[:2] for line in out.stdout.splitlines()[2:]]
        assert rows == [['relu', '279,520'], ['ChaATAC', '316,160']]
    # Without them, the registered default: train_cifar.py's CIFAR-10 head.
    rows = [line.split()[:2] for line in _run('cifar_resnet20_v2').stdout.splitlines()[2:]]
    assert rows == [['relu', '273,670'], ['ChaATAC', '310,310']]
