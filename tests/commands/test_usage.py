"""Every command's help starts with the line a user types to run it."""
import importlib

import pytest

COMMANDS = ('evaluate', 'export', 'classify', 'visualize', 'summary', 'demo', 'launch',
            'experiments')


@pytest.mark.parametrize('command', COMMANDS)
def test_usage_shows_python_m(command, capsys):
    main = importlib.import_module('gluon_atac.commands.' + command).main
    with pytest.raises(SystemExit) as stop:
        main(['--help'])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith('usage: python -m gluon_atac.%s ' % command)
