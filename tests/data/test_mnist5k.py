"""The embedded mnist5k digits."""
import numpy as np

from gluon_atac.data import load_mnist5k


def test_mnist5k_split_is_fixed():
    (train_x, train_y), (test_x, test_y) = load_mnist5k()
    assert train_x.shape == (4000, 32, 32, 3) and test_x.shape == (1000, 32, 32, 3)
    assert (train_x[:, :2] == 0).all() and (train_x[..., 0] == train_x[..., 2]).all()
    assert sorted(np.unique(test_y)) == list(range(10))
    np.testing.assert_array_equal(load_mnist5k()[1][1], test_y)
