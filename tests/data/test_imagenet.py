"""ImageNet-style readers: record files and folders agree, shards are disjoint."""
import hashlib
import os

import mxnet as mx
import numpy as np
import pytest

from gluon_atac.data.imagenet import (ShardSampler, _record_iter, count_images, device_slice,
                                      pack_folder, train_batches, val_batches, val_resize)
from gluon_atac.utils.seeding import seed_everything


def test_val_resize_is_ceil_of_size_over_crop_ratio():
    assert val_resize(224, 0.875) == 256
    assert val_resize(32, 0.875) == 37
    with pytest.raises(ValueError):
        val_resize(224, 0)


def test_record_file_and_folder_hold_the_same_images(tiny_imagenet):
    for split, count in (('train', 24), ('val', 8)):
        assert count_images(os.path.join(tiny_imagenet, split + '.rec')) == count
        assert count_images(os.path.join(tiny_imagenet, split)) == count
    rec = list(val_batches(os.path.join(tiny_imagenet, 'val.rec'), 4, 32, num_workers=1))
    folder = list(val_batches(os.path.join(tiny_imagenet, 'val'), 4, 32, num_workers=0))
    assert [len(l) for _, l in rec] == [len(l) for _, l in folder] == [4, 4]
    rec_x = np.concatenate([d.asnumpy() for d, _ in rec])
    folder_x = np.concatenate([d.asnumpy() for d, _ in folder])
    assert np.array_equal(np.concatenate([l.asnumpy() for _, l in rec]),
                          np.concatenate([l.asnumpy() for _, l in folder]))
    # Same preprocessing; only JPEG re-encoding and resize kernels differ.
    assert np.abs(rec_x - folder_x).mean() < 0.15


@pytest.mark.parametrize('layout', ['train.rec', 'train'])
def test_train_batches_gives_exactly_steps_batches(tiny_imagenet, layout):
    # 5 steps of 8 = 40 > 24 images: the reader wraps around instead of stopping early.
    batches = list(train_batches(os.path.join(tiny_imagenet, layout), 5, 8, 32, num_workers=1))
    assert len(batches) == 5
    assert all(d.shape == (8, 3, 32, 32) and l.shape == (8,) for d, l in batches)
    labels = np.concatenate([l.asnumpy() for _, l in batches])
    assert set(labels) <= {0.0, 1.0, 2.0, 3.0}


def test_shard_sampler_parts_are_disjoint_and_cover_the_set():
    parts = [ShardSampler(10, 5, 2, i) for i in range(2)]
    drawn = [set(p) for p in parts]
    assert not drawn[0] & drawn[1]
    assert drawn[0] | drawn[1] == set(range(10))
    assert len(list(ShardSampler(10, 12, 2, 1))) == 12
    with pytest.raises(ValueError):
        ShardSampler(10, 5, 2, 2)


@pytest.mark.parametrize('size,count', [(8, 2), (7, 3), (2, 4)])
def test_device_slice_cuts_as_split_and_load(size, count):
    batch = mx.nd.arange(size)
    devices = [mx.cpu(i) for i in range(count)]
    cut = mx.gluon.utils.split_and_load(batch, devices[:min(count, size)], even_split=False)
    expected = [c.asnumpy().astype(int).tolist() for c in cut]
    expected += [[]] * (count - len(expected))
    assert [list(device_slice(list(range(size)), (i, count))) for i in range(count)] == \
        expected


def test_replicas_read_the_slices_of_one_process_batches(tiny_imagenet):
    # Horovod rank r reads device r's images of each global batch, augmented alike.
    folder = os.path.join(tiny_imagenet, 'train')

    def read(replica):
        seed_everything(0, 1)
        seen = []
        batches = list(train_batches(folder, 2, 6, 32, num_workers=0, seed=5, seen=seen,
                                     replica=replica))
        return seen, batches
    whole_seen, whole = read((0, 1))
    parts = [read((rank, 2)) for rank in (0, 1)]
    for step, (data, label) in enumerate(whole):
        for rank, (seen, batches) in enumerate(parts):
            assert seen[3 * step:3 * step + 3] == whole_seen[6 * step + 3 * rank:][:3]
            assert np.array_equal(batches[step][0].asnumpy(),
                                  data[3 * rank:3 * rank + 3].asnumpy())
            assert np.array_equal(batches[step][1].asnumpy(),
                                  label[3 * rank:3 * rank + 3].asnumpy())


@pytest.mark.parametrize('layout', ['val', 'val.rec'])
def test_validation_slices_cover_the_set_once(tiny_imagenet, layout):
    path = os.path.join(tiny_imagenet, layout)
    whole = np.concatenate([l.asnumpy() for _, l in val_batches(path, 3, 32, num_workers=0)])
    parts = [[l.asnumpy() for _, l in val_batches(path, 3, 32, num_workers=0,
                                                   replica=(rank, 2))] for rank in (0, 1)]
    # Batches of 3, 3 and 2 images: slices 2+1, 2+1, 1+1.
    assert [len(p) for p in parts[0]] == [2, 2, 1] and [len(p) for p in parts[1]] == [1, 1, 1]
    interleaved = np.concatenate([np.concatenate([a, b]) for a, b in zip(*parts)])
    assert np.array_equal(interleaved, whole)


def test_folder_shards_read_only_their_images(tiny_imagenet):
    seen = [[], []]
    for part in range(2):
        list(train_batches(os.path.join(tiny_imagenet, 'train'), 1, 12, 32, num_workers=0,
                           num_parts=2, part_index=part, seen=seen[part]))
    assert not set(seen[0]) & set(seen[1])
    assert set(seen[0]) | set(seen[1]) == set(range(24))


def test_record_shards_are_disjoint(tiny_imagenet):
    # train_batches and val_batches build their record iterators with _record_iter, which
    # hands the shard to ImageRecordIter; the validation settings make images comparable.
    def digests(part):
        it = _record_iter(os.path.join(tiny_imagenet, 'train.rec'), None, 1, 40, 1, 2, part,
                          train=False)
        return {hashlib.md5(b.data[0].asnumpy().tobytes()).hexdigest() for b in it}
    first, second = digests(0), digests(1)
    assert len(first) + len(second) == 24
    assert not first & second


def test_pack_folder_numbers_classes_like_image_folder_dataset(tiny_imagenet, tmp_path):
    prefix = str(tmp_path / 'val')
    assert pack_folder(os.path.join(tiny_imagenet, 'val'), prefix) == 8
    record = mx.recordio.MXIndexedRecordIO(prefix + '.idx', prefix + '.rec', 'r')
    labels = [mx.recordio.unpack(record.read_idx(i))[0].label for i in range(8)]
    dataset = mx.gluon.data.vision.ImageFolderDataset(os.path.join(tiny_imagenet, 'val'))
    assert labels == [float(dataset[i][1]) for i in range(8)]


def test_folder_augmentation_does_not_depend_on_loader_processes(tiny_imagenet):
    def epoch(workers):
        np.random.seed(0)
        return np.concatenate([d.asnumpy() for d, _ in train_batches(
            os.path.join(tiny_imagenet, 'train'), 2, 6, 32, num_workers=workers, seed=7)])
    alone, parallel = epoch(0), epoch(2)
    np.testing.assert_allclose(alone, parallel, atol=1e-6)
