"""Reproducible randomness that survives a resume."""
import random

import mxnet as mx
import numpy as np

__all__ = ['seed_everything', 'epoch_seed']


def epoch_seed(seed, epoch=0):
    """The seed of ``epoch`` in a run seeded with ``seed`` (a non-negative 31-bit int).

    Give it to a ``numpy.random.RandomState`` that draws an epoch's data order and
    augmentation: the stream then depends on nothing but ``seed`` and ``epoch``.
    """
    return (int(seed) * 1000003 + int(epoch)) % (2 ** 31)


def seed_everything(seed, epoch=0):
    """Seed Python, NumPy and MXNet for ``epoch`` of a run seeded with ``seed``.

    Re-seeding at the start of every epoch (rather than once) is what makes a resumed run
    draw the same shuffles and augmentations as an uninterrupted one: MXNet's generator
    state cannot be saved in a checkpoint.

    Parameters
    ----------
    seed : int
    epoch : int, default 0

    Returns
    -------
    int
        The value used, :func:`epoch_seed`.
    """
    value = epoch_seed(seed, epoch)
    random.seed(value)
    np.random.seed(value)
    mx.random.seed(value)
    return value
