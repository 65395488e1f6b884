"""Shared test fixtures: files written by the original open-atac code."""
import os

import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')


@pytest.fixture
def open_atac_dir():
    """Folder with parameter files, inputs and logits written by open-atac."""
    return os.path.join(FIXTURES, 'open_atac')
