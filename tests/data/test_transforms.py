"""Augmentation and normalization of uint8 image batches."""
import numpy as np

from gluon_atac.data.transforms import normalize, random_crop_flip


class _FixedRng(object):
    """Crop offsets all ``offset``; flips all ``mirror``."""

    def __init__(self, offset, mirror):
        self.offset, self.mirror = offset, mirror

    def randint(self, low, high, size):
        return np.full(size, self.offset)

    def rand(self, count):
        return np.full(count, 0.0 if self.mirror else 1.0)


def _images(count=3):
    return np.random.RandomState(0).randint(0, 256, (count, 32, 32, 3)).astype(np.uint8)


def test_centre_crop_is_identity_and_mirror_flips():
    images = _images()
    np.testing.assert_array_equal(random_crop_flip(images, _FixedRng(4, False)), images)
    np.testing.assert_array_equal(random_crop_flip(images, _FixedRng(4, True)),
                                  images[:, :, ::-1])


def test_corner_crop_shifts_in_zero_padding():
    images = _images()
    out = random_crop_flip(images, _FixedRng(0, False))
    assert (out[:, :4] == 0).all() and (out[:, :, :4] == 0).all()
    np.testing.assert_array_equal(out[:, 4:, 4:], images[:, :28, :28])


def test_normalize_layout_and_values():
    out = normalize(np.full((2, 32, 32, 3), 255, np.uint8), (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    assert out.shape == (2, 3, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0, 0], [2.0, 1.0, 0.5])
