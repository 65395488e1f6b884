"""A smoke grid trained once per session, shared by the runner and report tests (marked
slow: the grid trains for about 30 s)."""
import pytest

from gluon_atac.experiments import run_grid
from support import smoke_runs


@pytest.fixture(scope='session')
def smoke_grid(tmp_path_factory):
    """Output root of a finished 4-run smoke grid, its runs and the runner's log."""
    root = str(tmp_path_factory.mktemp('grid'))
    runs = smoke_runs(root)
    lines = []
    results = run_grid(runs, workers=2, log=lines.append)
    return root, runs, results, lines
