"""A smoke grid trained once per session, shared by the runner and report tests."""
import pytest

from gluon_atac.experiments import expand, run_grid, smoke_data_dir

# Four runs: ReLU and ATAC ResNet-8, two seeds each, on tiny generated CIFAR-10.
SMOKE_ONLY = ['relu-b1-*', 'atac-b1-*']


def smoke_runs(root, **kwargs):
    """The smoke runs of the activations preset under ``root``."""
    data_dir = smoke_data_dir(root, 'cifar10')
    return expand('activations', root, seeds=2, budget='smoke', dataset='cifar10',
                  data_dir=data_dir, only=SMOKE_ONLY, **kwargs)


@pytest.fixture(scope='session')
def smoke_grid(tmp_path_factory):
    """Output root of a finished 4-run smoke grid, its runs and the runner's log."""
    root = str(tmp_path_factory.mktemp('grid'))
    runs = smoke_runs(root)
    lines = []
    results = run_grid(runs, workers=2, log=lines.append)
    return root, runs, results, lines
