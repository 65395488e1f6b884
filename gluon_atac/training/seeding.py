"""Reproducible randomness that survives a resume."""
import random

import mxnet as mx
import numpy as np

__all__ = ['seed_everything']


def seed_everything(seed, epoch=0):
    """Seed Python, NumPy and MXNet for ``epoch`` of a run seeded with ``seed``.

    Re-seeding at the start of every epoch (rather than once) is what makes a resumed run
    draw the same shuffles and augmentations as an uninterrupted one: MXNet's generator
    state cannot be saved in a checkpoint.

    Parameters
    ----------
    seed : int
    epoch : int, default 0
    """
    value = (int(seed) * 1000003 + int(epoch)) % (2 ** 31)
    random.seed(value)
    np.random.seed(value)
    mx.random.seed(value)
