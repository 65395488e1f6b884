"""Tiny CIFAR-10/100 files in the official binary layout, for smoke runs and tests.

:func:`write_tiny_cifar` makes synthetic but learnable images (each class has its own
colour and stripe pattern under noise and random phase, so a short run rises above
chance and the report has something to show); :func:`write_cifar_subset` copies the first
images of a real dataset.
"""
import numpy as np

from ..data import load_cifar, write_cifar_files

__all__ = ['write_tiny_cifar', 'write_cifar_subset', 'TINY_DATASETS']

TINY_DATASETS = ('cifar10', 'cifar100')


def _images(labels, num_classes, rng):
    """``N x 32 x 32 x 3`` uint8 images whose pattern depends on the label."""
    palette = np.random.RandomState(1234).uniform(40, 215, size=(num_classes, 3))
    freq = 1 + np.arange(num_classes) % 4
    vertical = (np.arange(num_classes) // 4) % 2 == 1
    grid = np.arange(32, dtype=np.float32)
    images = np.empty((len(labels), 3, 32, 32), dtype=np.float32)
    for i, label in enumerate(labels):
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * freq[label] * grid / 32 + phase)
        stripes = wave[None, :] if vertical[label] else wave[:, None]
        stripes = np.broadcast_to(stripes, (32, 32))
        images[i] = palette[label][:, None, None] + 40 * stripes[None]
    images += rng.normal(0, 25, size=images.shape)
    return np.clip(images, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def write_tiny_cifar(root, dataset='cifar10', train=256, test=128, seed=0):
    """Write a tiny ``dataset`` under ``root`` in the official binary layout.

    Parameters
    ----------
    root : str
        Folder to write into; the official sub-folder (``cifar-10-batches-bin`` or
        ``cifar-100-binary``) is created in it.
    dataset : {'cifar10', 'cifar100'}
    train, test : int
        Number of training and test images (training images are spread over the
        official number of batch files).
    seed : int
        The same seed writes the same bytes.

    Returns
    -------
    str
        ``root``, to pass as ``--data-dir``.
    """
    if dataset not in TINY_DATASETS:
        raise ValueError('tiny data exists for %s, not %r' % (', '.join(TINY_DATASETS),
                                                              dataset))
    num_classes = 10 if dataset == 'cifar10' else 100
    rng = np.random.RandomState(seed)
    splits = []
    for count in (train, test):
        # Cycling the labels keeps every class present even in tiny splits.
        fine = (np.arange(count) + rng.randint(num_classes)) % num_classes
        splits.append((_images(fine, num_classes, rng), fine))
    return write_cifar_files(root, dataset, *splits)


def write_cifar_subset(source, root, dataset, train=512, test=256):
    """Copy the first images of the real ``dataset`` in ``source`` into tiny files.

    CIFAR-100 keeps its real coarse labels: the subset is read once for each label set.

    Parameters
    ----------
    source : str
        Folder with the official files, as ``train_cifar.py --data-dir`` takes them.
    root : str
        Receives the official binary layout.
    dataset : {'cifar10', 'cifar100'}
    train, test : int
        Images to keep (fewer if the source has fewer).

    Returns
    -------
    str
        ``root``.
    """
    fine = load_cifar(source, dataset, download=False)
    coarse = load_cifar(source, dataset, coarse_labels=True, download=False) \
        if dataset == 'cifar100' else None
    splits = []
    for split, count in enumerate((train, test)):
        images, labels = fine[split]
        kept = (images[:count], labels[:count])
        splits.append(kept + (coarse[split][1][:count],) if coarse else kept)
    return write_cifar_files(root, dataset, *splits)
