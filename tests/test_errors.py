"""One-line errors for bad input."""
import mxnet as mx
import pytest

from gluon_atac.errors import cli_main, one_line, UsageError


def test_mxnet_errors_report_the_reason_not_the_backtrace():
    with pytest.raises(mx.base.MXNetError) as err:
        mx.nd.ones((2, 3)).reshape((4, 4))
    assert one_line(err.value).startswith('NDArray.Reshape: Check failed')


def test_cli_main_exits_2_with_one_line(capsys):
    @cli_main
    def main():
        raise UsageError('bad input\nmore detail')
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    assert capsys.readouterr().err == 'error: bad input\n'
