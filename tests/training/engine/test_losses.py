"""Label smoothing, mixup and distillation targets and losses, against values worked out
by hand."""
import mxnet as mx
import numpy as np
import pytest

from gluon_atac.training.engine.losses import (build_loss, mixup_lambda, smooth_labels,
                                               training_targets)


def test_smooth_labels_put_one_minus_eta_plus_eta_over_k_on_the_class():
    out = smooth_labels(mx.nd.array([2, 0]), 4, 0.1).asnumpy()
    np.testing.assert_allclose(out, [[0.025, 0.025, 0.925, 0.025],
                                     [0.925, 0.025, 0.025, 0.025]], rtol=1e-6)
    np.testing.assert_allclose(out.sum(axis=1), [1, 1], rtol=1e-6)


def test_targets_stay_sparse_without_smoothing_or_mixup():
    label = mx.nd.array([1, 3])
    assert training_targets(label, 4) is label


def test_mixup_targets_mix_the_batch_with_its_reverse():
    out = training_targets(mx.nd.array([0, 1, 3]), 4, eta=0.0, lam=0.7).asnumpy()
    np.testing.assert_allclose(out, [[0.7, 0, 0, 0.3], [0, 1, 0, 0], [0.3, 0, 0, 0.7]],
                               rtol=1e-6, atol=1e-7)
    smoothed = training_targets(mx.nd.array([0, 1]), 2, eta=0.2, lam=0.75).asnumpy()
    # Smoothed one-hots [0.9, 0.1] and [0.1, 0.9], mixed 0.75 : 0.25.
    np.testing.assert_allclose(smoothed, [[0.7, 0.3], [0.3, 0.7]], rtol=1e-6)


def test_mixup_targets_with_lambda_one_are_the_dense_labels():
    out = training_targets(mx.nd.array([1]), 3, eta=0.0, lam=1.0).asnumpy()
    np.testing.assert_array_equal(out, [[0, 1, 0]])


def test_mixup_lambda_is_one_in_the_last_epochs_and_beta_before():
    rng = np.random.RandomState(3)
    expected = np.random.RandomState(3).beta(0.2, 0.2)
    assert mixup_lambda(rng, 0.2, epoch=5, num_epochs=10, off_epochs=2) == expected
    assert mixup_lambda(rng, 0.2, epoch=8, num_epochs=10, off_epochs=2) == 1.0


def test_distillation_loss_weighs_soft_and_hard_terms():
    out = mx.nd.array([[2.0, 0.0, -1.0]])
    label = mx.nd.array([0])
    soft = mx.nd.array([[0.5, 0.3, 0.2]])
    loss = build_loss(sparse=True, teacher=True, temperature=2.0, hard_weight=0.25)
    logits = np.array([2.0, 0.0, -1.0])

    def log_softmax(z):
        return z - np.log(np.exp(z).sum())
    soft_term = 4.0 * -(np.array([0.5, 0.3, 0.2]) * log_softmax(logits / 2)).sum()
    hard_term = -log_softmax(logits)[0]
    assert loss(out, label, soft).asscalar() == pytest.approx(
        0.75 * soft_term + 0.25 * hard_term, rel=1e-5)
    plain = build_loss(sparse=True)
    assert plain(out, label).asscalar() == pytest.approx(hard_term, rel=2e-5)
