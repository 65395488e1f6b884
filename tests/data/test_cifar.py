"""CIFAR files in both official layouts: round trip, labels, damaged and missing files."""
import os
import pickle
import tarfile

import numpy as np
import pytest

from gluon_atac.data import (DataError, find_cifar_files, get_dataset, load_cifar,
                             write_cifar_files)
from support import write_cifar

LAYOUTS = [(d, l) for d in ('cifar10', 'cifar100') for l in ('bin', 'py')]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No download attempt: these tests must not depend on the network."""
    monkeypatch.setenv('GLUON_ATAC_OFFLINE', '1')


@pytest.mark.parametrize('dataset,layout', LAYOUTS)
@pytest.mark.parametrize('flat', [False, True])
def test_round_trip(tmp_path, dataset, layout, flat):
    written = write_cifar(str(tmp_path), dataset, layout, n_train=23, n_test=7, seed=1,
                          flat=flat)
    (train_x, train_y), (test_x, test_y) = load_cifar(str(tmp_path), dataset)
    assert train_x.shape == (23, 32, 32, 3) and train_x.dtype == np.uint8
    np.testing.assert_array_equal(train_x, written['train'][0])
    np.testing.assert_array_equal(train_y, written['train'][1])
    np.testing.assert_array_equal(test_x, written['test'][0])
    np.testing.assert_array_equal(test_y, written['test'][1])
    assert find_cifar_files(str(tmp_path), dataset)[0] == layout


@pytest.mark.parametrize('layout', ['bin', 'py'])
def test_cifar100_fine_and_coarse_labels(tmp_path, layout):
    written = write_cifar(str(tmp_path), 'cifar100', layout, n_train=400, n_test=50)
    fine = get_dataset('cifar100', str(tmp_path))
    coarse = get_dataset('cifar100', str(tmp_path), coarse_labels=True)
    assert (fine.classes, coarse.classes) == (100, 20)
    assert len(np.unique(fine.train[1])) > 20 and fine.train[1].max() < 100
    np.testing.assert_array_equal(coarse.train[1], written['train'][1] // 5)
    assert set(np.unique(coarse.train[1])) == set(range(20))


def test_subset_of_batches_loads(tmp_path):
    write_cifar(str(tmp_path), 'cifar10', 'bin', n_train=10, n_test=4)
    folder = os.path.join(str(tmp_path), 'cifar-10-batches-bin')
    for i in (2, 3, 4, 5):
        os.remove(os.path.join(folder, 'data_batch_%d.bin' % i))
    (train_x, _), _ = load_cifar(str(tmp_path), 'cifar10')
    assert len(train_x) == 2


def test_truncated_binary_names_the_file(tmp_path):
    write_cifar(str(tmp_path), 'cifar100', 'bin', n_train=8, n_test=4)
    path = os.path.join(str(tmp_path), 'cifar-100-binary', 'train.bin')
    with open(path, 'r+b') as handle:
        handle.truncate(3074 * 5 + 100)
    with pytest.raises(DataError, match='train.bin is truncated or malformed'):
        load_cifar(str(tmp_path), 'cifar100')


def test_malformed_pickle_names_the_file(tmp_path):
    write_cifar(str(tmp_path), 'cifar10', 'py', n_train=10, n_test=4)
    path = os.path.join(str(tmp_path), 'cifar-10-batches-py', 'test_batch')
    with open(path, 'rb') as handle:
        blob = handle.read()
    with open(path, 'wb') as handle:
        handle.write(blob[:len(blob) // 2])
    with pytest.raises(DataError, match='test_batch is truncated or malformed'):
        load_cifar(str(tmp_path), 'cifar10')


def test_labels_out_of_range_are_malformed(tmp_path):
    folder = tmp_path / 'cifar-10-batches-py'
    write_cifar(str(tmp_path), 'cifar10', 'py', n_train=5, n_test=2)
    with open(folder / 'test_batch', 'wb') as handle:
        pickle.dump({b'data': np.zeros((2, 3072), np.uint8), b'labels': [0, 12]}, handle)
    with pytest.raises(DataError, match='labels outside 0..9'):
        load_cifar(str(tmp_path), 'cifar10')


def test_missing_files_list_what_was_looked_for(tmp_path):
    with pytest.raises(DataError) as err:
        load_cifar(str(tmp_path / 'nowhere'), 'cifar100')
    message = str(err.value)
    assert 'cifar-100-binary/{train.bin,test.bin}' in message
    assert 'cifar-100-python/{train,test}' in message
    assert str(tmp_path / 'nowhere') in message


def test_unknown_dataset():
    with pytest.raises(DataError, match='unknown dataset'):
        get_dataset('svhn')


def test_official_archive_is_unpacked(tmp_path):
    written = write_cifar(str(tmp_path / 'src'), 'cifar100', 'py', n_train=6, n_test=3)
    with tarfile.open(str(tmp_path / 'cifar-100-python.tar.gz'), 'w:gz') as archive:
        archive.add(str(tmp_path / 'src' / 'cifar-100-python'), 'cifar-100-python')
    (train_x, _), _ = load_cifar(str(tmp_path), 'cifar100')
    np.testing.assert_array_equal(train_x, written['train'][0])


@pytest.mark.parametrize('has_data_filter', [True, False])
def test_archive_with_a_path_outside_the_folder_is_refused(tmp_path, monkeypatch,
                                                           has_data_filter):
    # Both Pythons with tarfile's 'data' filter and older patch releases refuse it.
    if not has_data_filter:
        monkeypatch.delattr(tarfile, 'data_filter', raising=False)
    (tmp_path / 'evil.txt').write_text('x')
    data_dir = tmp_path / 'data'
    data_dir.mkdir()
    with tarfile.open(str(data_dir / 'cifar-100-python.tar.gz'), 'w:gz') as archive:
        archive.add(str(tmp_path / 'evil.txt'), '../escaped.txt')
    with pytest.raises(DataError, match='cifar-100-python.tar.gz is truncated or malformed'):
        load_cifar(str(data_dir), 'cifar100', download=False)
    assert not (tmp_path / 'escaped.txt').exists()


@pytest.mark.parametrize('layout', ['bin', 'py'])
def test_given_coarse_labels_are_written(tmp_path, layout):
    images = np.random.RandomState(0).randint(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    fine = np.arange(6, dtype=np.int32) * 16
    coarse = np.arange(6, dtype=np.int32)[::-1]  # not fine // 5, the synthetic default
    write_cifar_files(str(tmp_path), 'cifar100', (images, fine, coarse), (images, fine),
                      layout)
    (train_x, train_y), (_, test_y) = load_cifar(str(tmp_path), 'cifar100',
                                                 coarse_labels=True)
    np.testing.assert_array_equal(train_x, images)
    np.testing.assert_array_equal(train_y, coarse)
    np.testing.assert_array_equal(test_y, fine // 5)
