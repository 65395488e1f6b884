"""Augmentation, normalization, loaders and the embedded mnist5k digits."""
import numpy as np

from gluon_atac.data import ImageData, load_mnist5k, eval_loader, train_loader
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


def _data(count=40):
    labels = np.arange(count, dtype=np.int32) % 10
    return ImageData((_images(count), labels), (_images(7), labels[:7]), 10, (0.5,) * 3,
                     (0.25,) * 3, True)


def test_train_loader_drops_partial_batch_and_ignores_workers():
    data = _data()
    batches = [[(x.asnumpy(), y.asnumpy()) for x, y in
                train_loader(data, 16, np.random.RandomState(3), workers)]
               for workers in (0, 2)]
    assert len(batches[0]) == 2 and batches[0][0][0].shape == (16, 3, 32, 32)
    for (x0, y0), (x1, y1) in zip(*batches):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)


def test_eval_loader_keeps_every_image_in_order():
    data = _data()
    labels = np.concatenate([y.asnumpy() for _, y in eval_loader(data, 4)])
    np.testing.assert_array_equal(labels, data.test[1])


def test_mnist5k_split_is_fixed():
    (train_x, train_y), (test_x, test_y) = load_mnist5k()
    assert train_x.shape == (4000, 32, 32, 3) and test_x.shape == (1000, 32, 32, 3)
    assert (train_x[:, :2] == 0).all() and (train_x[..., 0] == train_x[..., 2]).all()
    assert sorted(np.unique(test_y)) == list(range(10))
    np.testing.assert_array_equal(load_mnist5k()[1][1], test_y)
