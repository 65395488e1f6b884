"""The training engine's pieces against values worked out by hand."""
import logging

import mxnet as mx
import numpy as np
import pytest

from gluon_atac.errors import UsageError
from gluon_atac.nn import group_norm
from gluon_atac.training.engine.args import TrainingParser, add_shared_flags, decay_epochs
from gluon_atac.training.engine.determinism import make_deterministic
from gluon_atac.training.engine.devices import fitting_batch_size, split_batch
from gluon_atac.training.engine.loop import NonFiniteStep, train_epoch
from gluon_atac.training.engine.losses import (build_loss, mixup_lambda, smooth_labels,
                                               training_targets)
from gluon_atac.training.engine.progress import progress


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


def test_group_norm_normalizes_each_group_of_channels():
    norm = group_norm(in_channels=64)
    norm.initialize()
    x = mx.nd.arange(2 * 64 * 2 * 2).reshape((2, 64, 2, 2))
    y = norm(x).asnumpy()
    assert norm._num_groups == 32
    groups = y.reshape(2, 32, -1)
    np.testing.assert_allclose(groups.mean(axis=2), 0, atol=1e-5)
    # Each group holds 2 channels x 4 pixels of consecutive values 0..7: variance 5.25.
    expected = (np.arange(8) - 3.5) / np.sqrt(5.25 + 1e-5)
    np.testing.assert_allclose(groups[0, 0], expected, rtol=1e-5)


def test_decay_epochs_are_sorted_or_periodic():
    parser = TrainingParser()
    add_shared_flags(parser)
    assert decay_epochs(parser.parse_args(['--lr-decay-epoch', '60,40'])) == [40, 60]
    assert decay_epochs(parser.parse_args(['--lr-decay-period', '2', '--num-epochs',
                                           '7'])) == [2, 4, 6]
    with pytest.raises(UsageError, match='comma-separated integers'):
        decay_epochs(parser.parse_args(['--lr-decay-epoch', '4,x']))


def test_small_data_lowers_the_batch_per_device():
    logger = logging.getLogger('test')
    assert fitting_batch_size(8, 100, 2, logger) == 8
    assert fitting_batch_size(128, 24, 2, logger) == 12
    assert fitting_batch_size(16, 40, 1, logger, workers=2) == 16
    with pytest.raises(UsageError, match='cannot give each of 2 workers x 4 devices'):
        fitting_batch_size(8, 7, 4, logger, workers=2)


def test_split_batch_uses_no_more_devices_than_samples():
    ctx = [mx.cpu(0), mx.cpu(1), mx.cpu(2)]
    xs, ys = split_batch(mx.nd.arange(2), mx.nd.arange(2), ctx)
    assert [x.context for x in xs] == ctx[:2] and [y.shape for y in ys] == [(1,), (1,)]
    xs, _ = split_batch(mx.nd.arange(7), mx.nd.arange(7), ctx)
    assert [x.shape[0] for x in xs] == [3, 2, 2]


def _one_step_epoch(loss_fn, steps=1):
    net = mx.gluon.nn.Dense(3, in_units=4)
    net.initialize(mx.init.One())
    trainer = mx.gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5})
    batches = [(mx.nd.ones((2, 4)), mx.nd.array([0, 1]))] * steps
    return train_epoch(net, trainer, batches, [mx.cpu()], loss_fn, 2, progress(0, '', False))


def test_epoch_sums_the_squared_gradient_norms():
    # loss = sum of outputs: every weight's gradient is 1 per sample (2), every bias's 2.
    stats = _one_step_epoch(lambda out, label: out.sum(axis=1), steps=3)
    assert stats.gradient_sq_sum == 3 * (12 * 2 ** 2 + 3 * 2 ** 2)


def test_a_non_finite_gradient_with_a_finite_loss_stops_the_epoch():
    # sqrt'(0) is infinite: the loss is 0 while its gradient is not a number.
    with pytest.raises(NonFiniteStep) as stop:
        _one_step_epoch(lambda out, label: mx.nd.sqrt(out - out).sum(axis=1))
    assert stop.value.quantity == 'gradient norm' and stop.value.step == 0
    err = stop.value.in_run(4, 'run/checkpoint.ckpt', 3)
    assert str(err) == ('training diverged at epoch 4, by step 1: non-finite gradient norm '
                        'at learning rate 0.5; last good checkpoint: run/checkpoint.ckpt '
                        '(epoch 3)')
    assert 'none (no epoch finished)' in str(stop.value.in_run(1, 'c.ckpt', 0))


def test_deterministic_mode_cannot_begin_inside_a_running_python(monkeypatch):
    monkeypatch.delenv('MXNET_ENGINE_TYPE', raising=False)
    with pytest.raises(UsageError, match='--deterministic must be set before MXNet starts: '
                                         'run the script from the shell'):
        make_deterministic(restart=False)
