"""Shared test fixtures: files written by the original open-atac code, and tiny data sets.

The data sets are session fixtures: each pytest-xdist worker writes each one once. Tests
only read them; a test that damages files copies them (or writes its own) first.
"""
import os

import pytest

from gluon_atac.data.imagenet import write_synthetic_imagenet
from support import write_cifar

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')


@pytest.fixture
def open_atac_dir():
    """Folder with parameter files, inputs and logits written by open-atac."""
    return os.path.join(FIXTURES, 'open_atac')


@pytest.fixture(scope='session')
def tiny_imagenet(tmp_path_factory):
    """A tiny learnable ImageNet-style set: 4 classes of 40 px images, 6 training and 2
    validation images each, as class folders and record files."""
    return write_synthetic_imagenet(str(tmp_path_factory.mktemp('tinyin')), classes=4,
                                    train_per_class=6, val_per_class=2, size=40)


@pytest.fixture(scope='session')
def tiny_cifar(tmp_path_factory):
    """``tiny_cifar(dataset='cifar10', layout='bin', n_train=64, n_test=32)``: a folder of
    random CIFAR files (seed 0), written on the first request of each shape."""
    written = {}

    def folder(dataset='cifar10', layout='bin', n_train=64, n_test=32):
        shape = (dataset, layout, n_train, n_test)
        if shape not in written:
            written[shape] = str(tmp_path_factory.mktemp('%s_%s' % (dataset, layout)))
            write_cifar(written[shape], dataset, layout, n_train=n_train, n_test=n_test)
        return written[shape]
    return folder
