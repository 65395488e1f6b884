"""The epoch loop: gradient norms summed, non-finite steps stopped."""
import mxnet as mx
import pytest

from gluon_atac.training.engine.loop import NonFiniteStep, train_epoch
from gluon_atac.training.engine.progress import progress


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
