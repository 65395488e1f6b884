"""Deterministic mode is chosen before MXNet starts."""
import pytest

from gluon_atac.errors import UsageError
from gluon_atac.training.engine.determinism import make_deterministic


def test_deterministic_mode_cannot_begin_inside_a_running_python(monkeypatch):
    monkeypatch.delenv('MXNET_ENGINE_TYPE', raising=False)
    with pytest.raises(UsageError, match='--deterministic must be set before MXNet starts: '
                                         'run the script from the shell'):
        make_deterministic(restart=False)
