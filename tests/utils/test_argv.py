"""Argument lists as data."""
from gluon_atac.utils.argv import without_options


def test_without_options_drops_both_spellings_and_values():
    argv = ['--model', 'm', '--json', 'a.json', '--profile=p.txt', '--gpus', '0']
    assert without_options(argv, ('--json', '--profile')) == ['--model', 'm', '--gpus', '0']
