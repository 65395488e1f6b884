"""Training and evaluation loaders over in-memory image arrays."""
import numpy as np

from gluon_atac.data import ImageData, eval_loader, train_loader


def _data(count=40):
    rng = np.random.RandomState(0)
    labels = np.arange(count, dtype=np.int32) % 10
    train = rng.randint(0, 256, (count, 32, 32, 3)).astype(np.uint8)
    test = rng.randint(0, 256, (7, 32, 32, 3)).astype(np.uint8)
    return ImageData((train, labels), (test, labels[:7]), 10, (0.5,) * 3, (0.25,) * 3, True)


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
