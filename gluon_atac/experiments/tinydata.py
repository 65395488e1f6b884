"""Tiny CIFAR-10/100 files in the official binary layout, for smoke runs and tests.

The images are synthetic but learnable: each class has its own colour and stripe
pattern under noise and random shifts, so a short run rises above chance and the
report has something to show.
"""
import os

import numpy as np

__all__ = ['write_tiny_cifar', 'TINY_LAYOUT']

# Folder and files of the official binary distributions.
TINY_LAYOUT = {
    'cifar10': ('cifar-10-batches-bin',
                ['data_batch_%d.bin' % i for i in range(1, 6)], 'test_batch.bin'),
    'cifar100': ('cifar-100-binary', ['train.bin'], 'test.bin'),
}
_FINE_PER_COARSE = 5


def _images(labels, num_classes, rng):
    """``(N, 3, 32, 32)`` uint8 images whose pattern depends on the label."""
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
    return np.clip(images, 0, 255).astype(np.uint8)


def _records(fine, images, dataset):
    flat = images.reshape(len(images), -1)
    if dataset == 'cifar10':
        head = fine[:, None]
    else:
        head = np.stack([fine // _FINE_PER_COARSE, fine], axis=1)
    return np.concatenate([head.astype(np.uint8), flat], axis=1).tobytes()


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
    if dataset not in TINY_LAYOUT:
        raise ValueError('tiny data exists for %s, not %r' % (', '.join(TINY_LAYOUT), dataset))
    folder, train_files, test_file = TINY_LAYOUT[dataset]
    num_classes = 10 if dataset == 'cifar10' else 100
    rng = np.random.RandomState(seed)
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    splits = [(name, part) for name, part in
              zip(train_files, np.array_split(np.arange(train), len(train_files)))]
    splits.append((test_file, np.arange(test)))
    for name, index in splits:
        # Cycling the labels keeps every class present even in tiny splits.
        fine = (index + rng.randint(num_classes)) % num_classes
        payload = _records(fine, _images(fine, num_classes, rng), dataset)
        tmp = os.path.join(root, folder, name + '.tmp')
        with open(tmp, 'wb') as handle:
            handle.write(payload)
        os.replace(tmp, os.path.join(root, folder, name))
    return root
