"""Reproduce the paper's tables: named experiment grids, a resumable runner, reports.

``python -m gluon_atac.experiments list`` shows the presets, ``run PRESET`` trains a grid
and ``report DIR`` writes the tables and figures.
"""
from .presets import PRESETS, BUDGETS, Preset, Run, get_preset, expand
from .runner import run_grid, run_state, device_groups, smoke_data_dir
from .report import build_report, collect, summarize
from .tinydata import write_tiny_cifar
