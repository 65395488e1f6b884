"""Vectorized NumPy augmentation and normalization of uint8 HWC image batches."""
import numpy as np

__all__ = ['random_crop_flip', 'normalize']

# Bounds peak memory of the padded copy when a whole training set is augmented.
_CHUNK = 8192


def random_crop_flip(images, rng, pad=4, flip=True):
    """Zero-pad by ``pad``, take a random crop of the original size, maybe mirror it.

    Parameters
    ----------
    images : ndarray
        uint8 ``N x H x W x C``.
    rng : numpy.random.RandomState
        Source of the crop offsets (drawn first) and the flips (drawn second).
    pad : int, default 4
    flip : bool, default True
        Mirror each image left-right with probability 1/2.

    Returns
    -------
    ndarray
        Augmented copy, same shape and dtype.
    """
    count, height, width = images.shape[:3]
    offsets = rng.randint(0, 2 * pad + 1, size=(count, 2))
    mirror = rng.rand(count) < 0.5 if flip else np.zeros(count, dtype=bool)
    out = np.empty_like(images)
    for start in range(0, count, _CHUNK):
        stop = min(start + _CHUNK, count)
        padded = np.pad(images[start:stop], ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        rows = offsets[start:stop, :1] + np.arange(height)
        cols = offsets[start:stop, 1:] + np.arange(width)
        # Columns of mirrored images are read right to left.
        cols = np.where(mirror[start:stop, None], cols[:, ::-1], cols)
        index = np.arange(stop - start)[:, None, None]
        out[start:stop] = padded[index, rows[:, :, None], cols[:, None, :]]
    return out


def normalize(images, mean, std):
    """uint8 ``N x H x W x C`` to float32 ``N x C x H x W``: ``(x / 255 - mean) / std``.

    Parameters
    ----------
    images : ndarray
    mean, std : sequence of float
        Per channel, on the 0..1 scale.
    """
    scaled = images.astype(np.float32) / 255.0
    scaled = (scaled - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))
