"""ImageNet-style data: record files and class folders, with the original's augmentation.

Both layouts give the same preprocessing. Training: random resized crop (area 0.08-1,
aspect 3/4-4/3), mirror, brightness/contrast/saturation jitter 0.4, PCA lighting 0.1.
Validation: resize the short side to ``ceil(input_size / crop_ratio)``, centre crop.
Under a distributed kvstore every worker reads only its shard (``num_parts`` /
``part_index``); under Horovod, a process of a class-folder run reads only the slice of
each batch that one device of a one-process run would get (``replica``). A damaged image
stops either reader with a one-line ``DataError`` naming it (see
:mod:`gluon_atac.data.integrity`).
"""
import contextlib
import math
import os

import cv2
import numpy as np
import mxnet as mx
from mxnet import gluon
from mxnet.gluon.data.vision import transforms

from ..errors import DataError, one_line
from ..model_zoo.config import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from ..utils.seeding import seed_everything
from .integrity import check_record_file, decode_image_file

__all__ = ['MEAN_RGB', 'STD_RGB', 'JITTER', 'LIGHTING', 'val_resize', 'val_crop',
           'count_images', 'ShardSampler', 'device_slice', 'train_batches', 'val_batches',
           'preprocess_image', 'class_images', 'pack_folder', 'write_synthetic_imagenet']

MEAN_RGB, STD_RGB = IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
JITTER = 0.4
LIGHTING = 0.1
_IMAGE_EXTS = ('.jpg', '.jpeg', '.png')


def val_resize(input_size, crop_ratio=0.875):
    """Short side validation images are resized to before the centre crop."""
    if not 0 < crop_ratio <= 1:
        raise ValueError('--crop-ratio must be in (0, 1], got %r' % crop_ratio)
    return int(math.ceil(input_size / crop_ratio))


def _is_rec(path):
    return str(path).endswith('.rec')


def _idx_of(rec, idx):
    idx = idx or os.path.splitext(rec)[0] + '.idx'
    for path in (rec, idx):
        if not os.path.isfile(path):
            raise FileNotFoundError('record file not found: %s' % path)
    return idx


def _check_folder(root):
    if not os.path.isdir(root):
        raise FileNotFoundError('image folder not found: %s (expected <class>/*.jpg)'
                                % root)


def count_images(path, idx=None):
    """Number of images in a ``.rec`` file (counted in its ``.idx``) or a class folder.

    A record file is checked first (:func:`gluon_atac.data.integrity.check_record_file`,
    once per process): a damaged record raises ``DataError``.
    """
    if _is_rec(path):
        return check_record_file(path, _idx_of(path, idx))
    _check_folder(path)
    return len(_Images(path))


class ShardSampler(gluon.data.Sampler):
    """Indices of one worker's shard, reshuffled each epoch, ``length`` per epoch.

    Worker ``part_index`` of ``num_parts`` owns positions ``part_index, part_index +
    num_parts, ...``: shards are disjoint and together cover the data set. Each epoch
    draws a permutation of the shard from NumPy's global generator (seeded per epoch by
    :func:`gluon_atac.utils.seeding.seed_everything`) and wraps around when ``length`` exceeds
    the shard, so all workers run the same number of steps, as ``dist_sync`` requires.

    Parameters
    ----------
    size : int
        Samples in the whole data set.
    length : int
        Indices per epoch.
    num_parts : int, default 1
    part_index : int, default 0
    shuffle : bool, default True
    """

    def __init__(self, size, length, num_parts=1, part_index=0, shuffle=True):
        if not 0 <= part_index < num_parts:
            raise ValueError('part_index %d outside 0..%d' % (part_index, num_parts - 1))
        self.shard = np.arange(part_index, size, num_parts)
        if not len(self.shard):
            raise ValueError('%d images cannot be split into %d shards' % (size, num_parts))
        self.length, self.shuffle = int(length), shuffle

    def __iter__(self):
        repeats = -(-self.length // len(self.shard))
        order = [np.random.permutation(self.shard) if self.shuffle else self.shard
                 for _ in range(repeats)]
        return iter(np.concatenate(order)[:self.length].tolist())

    def __len__(self):
        return self.length


class _Images(gluon.data.vision.ImageFolderDataset):
    """A class folder whose damaged images raise ``DataError`` naming the file, in loader
    processes too (the loader hands the exception to the main process)."""

    def __getitem__(self, idx):
        path, label = self.items[idx]
        return decode_image_file(path, self._flag, 'class folder %s' % self._root,
                                 wait=False), label

    def name_failure(self, indices):
        """Raise ``DataError`` naming the first of the images ``indices`` that does not
        decode, if one does not."""
        for idx in indices:
            decode_image_file(self.items[idx][0], self._flag, 'class folder %s' % self._root)


def _folder_batches(loader, images, batches):
    """The batches of ``loader``, which reads ``images`` at the positions ``batches``.

    Images are decoded asynchronously, so an image that fails to decode although it
    passed its check shows only when its batch is used; that batch's images are then
    decoded again, one by one, to name it.
    """
    it = iter(loader)
    for indices in batches:
        try:
            data, label = next(it)
            data.wait_to_read()
        except mx.base.MXNetError:
            images.name_failure(indices)
            raise
        yield data, label


class _SeededAugmentation(gluon.data.Dataset):
    """Training samples whose random augmentation is seeded by (``seed``, index).

    Loader processes start as copies of one random state, so unseeded they would draw the
    same crops for different samples; seeded per sample, every sample gets its own draw
    and an epoch's augmentation does not depend on the number of loader processes (a
    resumed run repeats it exactly).
    """

    def __init__(self, dataset, transform, seed):
        self._dataset, self._transform, self._seed = dataset, transform, seed

    def __len__(self):
        return len(self._dataset)

    def __getitem__(self, idx):
        image, label = self._dataset[idx]
        seed_everything(self._seed, idx)
        return self._transform(image), label


def _normalize():
    return transforms.Normalize([m / 255 for m in MEAN_RGB], [s / 255 for s in STD_RGB])


def _train_transform(input_size):
    return transforms.Compose([
        transforms.RandomResizedCrop(input_size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)),
        transforms.RandomFlipLeftRight(),
        transforms.RandomColorJitter(brightness=JITTER, contrast=JITTER,
                                     saturation=JITTER),
        transforms.RandomLighting(LIGHTING),
        transforms.ToTensor(),
        _normalize()])


def val_crop(input_size=224, crop_ratio=0.875):
    """The validation resize and centre crop, as a transform of uint8 ``H x W x 3`` images.

    The short side goes to :func:`val_resize`, then the centre ``input_size`` square is
    kept; the result is still uint8 ``H x W x 3`` (e.g. to show what the network sees).
    """
    return transforms.Compose([
        transforms.Resize(val_resize(input_size, crop_ratio), keep_ratio=True),
        transforms.CenterCrop(input_size)])


def _val_transform(input_size, crop_ratio):
    return transforms.Compose([val_crop(input_size, crop_ratio), transforms.ToTensor(),
                               _normalize()])


def _record_iter(rec, idx, batch_size, input_size, num_workers, num_parts, part_index,
                 train, crop_ratio=0.875, seed=0):
    # ImageRecordIter aborts the process on a damaged record instead of raising.
    check_record_file(rec, _idx_of(rec, idx))
    norm = dict(mean_r=MEAN_RGB[0], mean_g=MEAN_RGB[1], mean_b=MEAN_RGB[2],
                std_r=STD_RGB[0], std_g=STD_RGB[1], std_b=STD_RGB[2])
    common = dict(path_imgrec=rec, path_imgidx=_idx_of(rec, idx), batch_size=batch_size,
                  data_shape=(3, input_size, input_size),
                  preprocess_threads=max(1, num_workers),
                  num_parts=num_parts, part_index=part_index, **norm)
    if not train:
        return mx.io.ImageRecordIter(shuffle=False, resize=val_resize(input_size, crop_ratio),
                                     **common)
    return mx.io.ImageRecordIter(
        shuffle=True, seed=seed, seed_aug=seed, rand_mirror=True, random_resized_crop=True,
        min_random_area=0.08, max_random_area=1.0, min_aspect_ratio=3 / 4,
        max_aspect_ratio=4 / 3, brightness=JITTER, contrast=JITTER, saturation=JITTER,
        pca_noise=LIGHTING, **common)


@contextlib.contextmanager
def _naming(rec):
    """Turn a failure of ``ImageRecordIter`` on ``rec`` into a one-line error naming it.

    The start-up check does not read a JPEG's compressed data, where damage can still make
    the decoder fail; ``ImageRecordIter`` then raises without naming the file.
    """
    try:
        yield
    except mx.base.MXNetError as err:
        raise DataError('reading %s failed, probably on an image that does not decode (%s)'
                        % (rec, one_line(err))) from None


def device_slice(positions, replica):
    """The positions of one batch that device ``index`` of ``count`` gets.

    Cut as MXNet 1.9's ``split_and_load(..., even_split=False)`` (and so
    :func:`gluon_atac.training.engine.devices.split_batch`) cuts a batch: the first
    ``len % count`` slices one longer than the rest, and fewer devices than ``count`` for
    a batch smaller than ``count``.

    Parameters
    ----------
    positions : sequence
    replica : (int, int)
        ``(index, count)``.

    Returns
    -------
    sequence
        Possibly empty (a device a small batch does not reach).
    """
    index, count = replica
    count = min(count, len(positions))
    if index >= count:
        return positions[:0]
    each, longer = divmod(len(positions), count)
    start = index * each + min(index, longer)
    return positions[start:start + each + (index < longer)]


def _processes(num_workers):
    # More loader processes than cores only add memory (-j 48 is meant for decoding threads).
    return min(max(0, num_workers), os.cpu_count() or 1)


def _unpinned(data):
    # ImageRecordIter fills pinned memory and loader processes shared memory, and a
    # hybridized block on mx.cpu() refuses both; validation batches are small enough to
    # copy so they can be fed directly.
    return data.as_in_context(mx.cpu())


def train_batches(path, steps, batch_size, input_size, num_workers=4, num_parts=1,
                  part_index=0, seed=0, idx=None, seen=None, replica=(0, 1)):
    """Exactly ``steps`` augmented training batches of this worker's shard.

    Parameters
    ----------
    path : str
        ``.rec`` file (read with ``ImageRecordIter``) or a folder ``<class>/*.jpg``.
    steps : int
        Batches to yield; a shard shorter than ``steps * batch_size`` is read again from
        its start, so every worker of a distributed run takes the same number of steps.
    batch_size : int
        Images per batch on this worker.
    input_size : int
    num_workers : int, default 4
        Decoding threads (record files) or loader processes (folders; at most the core
        count).
    num_parts, part_index : int
        Shard of this worker.
    seed : int, default 0
        Augmentation seed (and the shuffle seed of record files); vary it per epoch.
        Folders shuffle with NumPy's global generator and seed each image's augmentation
        from ``seed`` and its index.
    idx : str, optional
        Index file of ``path``; defaults to ``path`` with ``.idx``.
    seen : list, optional
        Receives the data-set positions of the images this epoch reads (folders only: a
        record iterator does not tell), e.g. to check that shards are disjoint.
    replica : (int, int), default (0, 1)
        ``(index, count)``: from each batch of ``batch_size`` keep only
        :func:`device_slice` ``index`` of ``count`` (folders only; record files are
        sharded with ``num_parts`` instead). A Horovod process ``r`` of ``N`` so reads
        exactly the images, augmented alike, that device ``r`` of a one-process run on
        ``N`` devices gets.

    Yields
    ------
    (NDArray, NDArray)
        Float32 ``N x 3 x S x S`` images and class labels; from record files in pinned
        CPU memory (fast copies to GPUs; spread them with ``split_and_load``).
    """
    if _is_rec(path):
        with _naming(path):
            it = _record_iter(path, idx, batch_size, input_size, num_workers, num_parts,
                              part_index, train=True, seed=seed)
            done = 0
            while done < steps:
                for batch in it:
                    yield batch.data[0], batch.label[0]
                    done += 1
                    if done == steps:
                        return
                it.reset()
        return
    _check_folder(path)
    dataset = _Images(path)
    order = list(ShardSampler(len(dataset), steps * batch_size, num_parts, part_index))
    batches = [device_slice(order[i:i + batch_size], replica)
               for i in range(0, len(order), batch_size)]
    if seen is not None:
        seen.extend(i for batch in batches for i in batch)
    loader = gluon.data.DataLoader(
        _SeededAugmentation(dataset, _train_transform(input_size), seed),
        batch_sampler=batches, num_workers=_processes(num_workers))
    for data, label in _folder_batches(loader, dataset, batches):
        yield data, label.astype('float32')


def val_batches(path, batch_size, input_size, crop_ratio=0.875, num_workers=4, idx=None,
                replica=(0, 1)):
    """Every validation image once, resized and centre-cropped.

    Parameters
    ----------
    path : str
        ``.rec`` file or a folder ``<class>/*.jpg``.
    batch_size, input_size : int
    crop_ratio : float, default 0.875
        Images are resized to ``ceil(input_size / crop_ratio)`` before the crop.
    num_workers : int, default 4
    idx : str, optional
    replica : (int, int), default (0, 1)
        ``(index, count)``: yield only :func:`device_slice` ``index`` of ``count`` of each
        batch (a slice a small last batch leaves empty is skipped), so that ``count``
        processes together score every image once.

    Yields
    ------
    (NDArray, NDArray)
        Images (on ``mx.cpu()``) and labels; the last batch may be smaller.
    """
    if _is_rec(path):
        # ImageRecordIter refuses a batch larger than the file.
        batch_size = min(batch_size, count_images(path, idx))
        with _naming(path):
            it = _record_iter(path, idx, batch_size, input_size, num_workers, 1, 0,
                              train=False, crop_ratio=crop_ratio)
            for batch in it:
                # round_batch fills the last batch from the start; those rows are not new.
                part = device_slice(range(batch_size - batch.pad), replica)
                if len(part):
                    yield (_unpinned(batch.data[0][part.start:part.stop]),
                           batch.label[0][part.start:part.stop])
        return
    _check_folder(path)
    images = _Images(path)
    batches = [device_slice(range(i, min(i + batch_size, len(images))), replica)
               for i in range(0, len(images), batch_size)]
    batches = [b for b in batches if len(b)]
    loader = gluon.data.DataLoader(
        images.transform_first(_val_transform(input_size, crop_ratio)),
        batch_sampler=batches, num_workers=_processes(num_workers))
    for data, label in _folder_batches(loader, images, batches):
        yield _unpinned(data), label.astype('float32')


def preprocess_image(path, input_size=224, crop_ratio=0.875):
    """One image file as a normalized ``1 x 3 x S x S`` batch (validation preprocessing)."""
    image = decode_image_file(path)
    return _val_transform(input_size, crop_ratio)(image).expand_dims(0)


def class_images(folder):
    """``(label, path)`` of every image of a ``<class>/*`` folder, labels the sorted class
    folders' positions (as ``ImageFolderDataset`` numbers them)."""
    _check_folder(folder)
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    for label, name in enumerate(classes):
        for fname in sorted(os.listdir(os.path.join(folder, name))):
            if fname.lower().endswith(_IMAGE_EXTS):
                yield label, os.path.join(folder, name, fname)


def pack_folder(folder, prefix, quality=95):
    """Pack a class folder into ``prefix.rec`` + ``prefix.idx`` (what ``im2rec`` does).

    Labels are the sorted class-folder positions, as ``ImageFolderDataset`` numbers them,
    so both layouts of one data set agree.

    Parameters
    ----------
    folder : str
        ``<class>/*.jpg`` tree.
    prefix : str
    quality : int, default 95
        JPEG quality of the re-encoded images.

    Returns
    -------
    int
        Number of records written.
    """
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    record = mx.recordio.MXIndexedRecordIO(prefix + '.idx', prefix + '.rec', 'w')
    count = 0
    try:
        for label, path in class_images(folder):
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            header = mx.recordio.IRHeader(0, float(label), count, 0)
            record.write_idx(count, mx.recordio.pack_img(header, image, quality=quality))
            count += 1
    finally:
        record.close()
    return count


def write_synthetic_imagenet(root, classes=4, train_per_class=12, val_per_class=4,
                             size=40, seed=0):
    """Write a tiny learnable ImageNet-style set as JPEG folders and record files.

    Each class has its own colour and stripe orientation plus noise, so a network can
    beat chance within an epoch or two. For smoke tests and demos, without downloads.

    Parameters
    ----------
    root : str
        Gets ``train/<class>/*.jpg``, ``val/<class>/*.jpg``, ``train.rec/.idx`` and
        ``val.rec/.idx``.
    classes : int, default 4
    train_per_class, val_per_class : int
    size : int, default 40
        Side of the square images.
    seed : int, default 0

    Returns
    -------
    str
        ``root``.
    """
    rng = np.random.RandomState(seed)
    colours = rng.randint(40, 216, size=(classes, 3))
    grid = np.arange(size)
    for split, per_class in (('train', train_per_class), ('val', val_per_class)):
        for label in range(classes):
            folder = os.path.join(root, split, 'class%02d' % label)
            os.makedirs(folder, exist_ok=True)
            stripes = (grid[:, None] if label % 2 else grid[None, :]) // (2 + label) % 2
            for i in range(per_class):
                noise = rng.randint(-30, 31, size=(size, size, 3))
                image = colours[label] + 40 * stripes[..., None] + noise
                image = np.clip(image, 0, 255).astype(np.uint8)
                cv2.imwrite(os.path.join(folder, '%03d.jpg' % i), image)
        pack_folder(os.path.join(root, split), os.path.join(root, split))
    return root
