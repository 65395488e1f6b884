"""Smoke data: generated tiny CIFAR, or a subset of real files, read by the data module."""
import os

import numpy as np
import pytest

from gluon_atac.data import load_cifar
from gluon_atac.experiments import smoke_data_dir, write_tiny_cifar
from support import write_cifar


@pytest.mark.parametrize('dataset, classes', [('cifar10', 10), ('cifar100', 100)])
def test_generated_files_load_with_every_class(tmp_path, dataset, classes):
    write_tiny_cifar(str(tmp_path), dataset, train=120, test=100)
    (train_x, train_y), (test_x, test_y) = load_cifar(str(tmp_path), dataset, download=False)
    assert train_x.shape == (120, 32, 32, 3) and test_x.shape == (100, 32, 32, 3)
    assert set(test_y) == set(range(classes))
    if dataset == 'cifar100':
        coarse = load_cifar(str(tmp_path), dataset, coarse_labels=True, download=False)
        np.testing.assert_array_equal(coarse[0][1], train_y // 5)


def test_same_seed_same_bytes(tmp_path):
    paths = [write_tiny_cifar(str(tmp_path / name), 'cifar10') for name in 'ab']
    read = [open(os.path.join(p, 'cifar-10-batches-bin', 'test_batch.bin'), 'rb').read()
            for p in paths]
    assert read[0] == read[1]


@pytest.mark.parametrize('layout', ['bin', 'py'])
def test_subset_of_real_files_keeps_images_and_both_label_sets(tmp_path, layout):
    source = str(tmp_path / 'real')
    written = write_cifar(source, 'cifar100', layout=layout, n_train=40, n_test=30)
    path = smoke_data_dir(str(tmp_path / 'out'), 'cifar100', source=source)
    assert path.endswith(os.path.join('_data', 'subset-cifar100'))
    (train_x, train_y), (test_x, test_y) = load_cifar(path, 'cifar100', download=False)
    np.testing.assert_array_equal(train_x, written['train'][0])
    np.testing.assert_array_equal(test_y, written['test'][1])
    coarse = load_cifar(path, 'cifar100', coarse_labels=True, download=False)
    np.testing.assert_array_equal(coarse[1][1], written['test'][1] // 5)
    # Made once: a second call finds the copy of the same source.
    stamp = os.path.getmtime(os.path.join(path, 'SOURCE'))
    assert smoke_data_dir(str(tmp_path / 'out'), 'cifar100', source=source) == path
    assert os.path.getmtime(os.path.join(path, 'SOURCE')) == stamp


def test_imagenet_smoke_data_is_generated_once_unless_given(tmp_path):
    root = str(tmp_path)
    assert smoke_data_dir(root, 'imagenet', source='/my/imagenet') == '/my/imagenet'
    path = smoke_data_dir(root, 'imagenet')
    assert sorted(f for f in os.listdir(path) if f.endswith(('.rec', '.idx'))) == [
        'train.idx', 'train.rec', 'val.idx', 'val.rec']
    assert smoke_data_dir(root, 'mnist5k') is None
