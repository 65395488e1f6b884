"""One training epoch over a data-parallel batch stream, shared by both recipes."""
import math
import time

import mxnet as mx
import numpy as np
from mxnet import autograd

from ...errors import DivergenceError
from .devices import split_batch

__all__ = ['EpochStats', 'NonFiniteStep', 'train_epoch', 'CHECK_EVERY']

# Steps between checks for a non-finite loss or gradient norm: each check waits for the
# devices.
CHECK_EVERY = 20


class NonFiniteStep(DivergenceError):
    """A batch's loss or gradient norm is NaN or infinite (a recipe that knows the epoch
    and its checkpoint raises a fuller :class:`DivergenceError`; uncaught, this one also
    exits 3).

    Attributes
    ----------
    step : int
        0-based index of the batch in its epoch by which the value was seen non-finite
        (checked every ``CHECK_EVERY`` steps and at the end of the epoch).
    lr : float
        The learning rate of that step.
    quantity : str
        ``'loss'`` or ``'gradient norm'``.
    """

    def __init__(self, step, lr, quantity):
        super(NonFiniteStep, self).__init__('training diverged: non-finite %s by step %d '
                                            'of the epoch (lr %g)' % (quantity, step + 1, lr))
        self.step, self.lr, self.quantity = step, lr, quantity

    def in_run(self, epoch, checkpoint, saved_epoch):
        """The one-line error of a run: epoch, step, learning rate, last good checkpoint.

        Parameters
        ----------
        epoch : int
            1-based epoch that diverged.
        checkpoint : str
            The run's resume checkpoint.
        saved_epoch : int
            Epoch ``checkpoint`` holds; 0 when no epoch has finished.
        """
        last = '%s (epoch %d)' % (checkpoint, saved_epoch) if saved_epoch else \
            'none (no epoch finished)'
        return DivergenceError('training diverged at epoch %d, by step %d: non-finite %s at '
                               'learning rate %g; last good checkpoint: %s'
                               % (epoch, self.step + 1, self.quantity, self.lr, last))


class EpochStats(object):
    """Running loss and top-1 error of an epoch's training batches.

    The sums stay on the devices (float64, so long epochs add up as exactly as Python
    floats would) and are read back only when :attr:`loss`, :attr:`accuracy`,
    :attr:`loss_sum` or :attr:`correct` is asked for: a read waits for every queued step,
    so the loop itself never does.

    Attributes
    ----------
    samples : int
    seconds : float
        Wall time of the epoch's training steps, set by :meth:`finish`.
    """

    def __init__(self):
        self.samples = 0
        self.started = time.time()
        self.seconds = None
        # Per device: NDArray sums of the losses and of the correct predictions.
        self._sums = {}
        self._final = None
        self._gradient_sq = None

    def add(self, losses, outputs, labels):
        """Queue one step's per-device losses, outputs and hard labels into the sums."""
        for loss, out, label in zip(losses, outputs, labels):
            hits = out.argmax(axis=1) == label.astype('float32')
            step = mx.nd.concat(loss.sum(), hits.sum(), dim=0).astype('float64')
            total = self._sums.get(loss.context)
            self._sums[loss.context] = step if total is None else total + step

    def add_gradients(self, groups):
        """Queue the squared norm of one step's gradients: lists of NDArrays on one device,
        one list per dtype (see :func:`_gradient_groups`)."""
        for same in groups:
            # One operator for all arrays of a dtype; float32 sums even for float16.
            step = mx.nd.multi_sum_sq(*same, num_arrays=len(same)).sum().astype('float64')
            total = self._gradient_sq
            self._gradient_sq = step if total is None else total + step

    @property
    def gradient_sq_sum(self):
        """Sum over the steps of the squared gradient norms (NaN or infinite once any
        gradient was)."""
        return 0.0 if self._gradient_sq is None else float(self._gradient_sq.asscalar())

    def finish(self):
        """End the epoch: wait for its steps, read the sums once, and time it."""
        self._final = self._totals()
        self.seconds = time.time() - self.started

    def combine(self, sum_across):
        """Make the epoch's sums and sample count those of all workers.

        Parameters
        ----------
        sum_across : callable
            ``sum_across(values)``: the NumPy array of ``values`` added up over the
            workers (every worker calls it together).
        """
        totals = sum_across(np.append(self._totals(), self.samples))
        self._final, self.samples = totals[:2], int(round(totals[2]))

    def _totals(self):
        if self._final is not None:
            return self._final
        return sum((s.asnumpy() for s in self._sums.values()), np.zeros(2))

    @property
    def loss_sum(self):
        """Sum of the per-sample losses."""
        return float(self._totals()[0])

    @property
    def correct(self):
        """Samples whose arg-max output is their (unmixed) label."""
        return float(self._totals()[1])

    @property
    def loss(self):
        """Mean training loss per sample."""
        return self.loss_sum / max(self.samples, 1)

    @property
    def accuracy(self):
        """Training top-1 accuracy against the unmixed labels."""
        return self.correct / max(self.samples, 1)

    def samples_per_sec(self, workers=1):
        """Images per second since the epoch started, over ``workers`` equal workers."""
        return self.samples * workers / max(time.time() - self.started, 1e-9)


def train_epoch(net, trainer, batches, ctx, loss_fn, step_batch, bar, prepare=None,
                on_step=None):
    """Forward, backward and one optimizer step per batch, data-parallel over ``ctx``.

    Parameters
    ----------
    net : mxnet.gluon.Block
    trainer : mxnet.gluon.Trainer
    batches : iterable of (NDArray, NDArray)
        Images and class labels.
    ctx : list of Context
    loss_fn : callable
        ``loss_fn(output, target)``, or ``loss_fn(output, target, soft)`` when
        ``prepare`` gives soft targets (distillation).
    step_batch : int
        Samples one ``trainer.step`` averages the gradients over (the global batch under
        synchronous kvstores).
    bar : tqdm.tqdm
        Progress bar advanced by each batch's size.
    prepare : callable, optional
        ``prepare(xs, ys) -> (xs, targets, soft)`` on the lists of device slices of a
        batch: augmentation per device, as GluonCV does (mixup, label smoothing), and the
        extra loss argument of each slice (a list, or ``None``). Default: the labels are
        the targets.
    on_step : callable, optional
        ``on_step(i, stats)`` after step ``i`` (0-based), e.g. periodic logging. Reading
        the statistics waits for the queued steps; read them once per log interval.

    Returns
    -------
    EpochStats

    Raises
    ------
    NonFiniteStep
        At a batch whose loss or gradient norm is not finite: the weights are no longer
        usable, and the caller keeps the files of the last finished epoch.
    """
    stats = EpochStats()
    grads = None
    for i, (data, label) in enumerate(batches):
        xs, hard = split_batch(data, label, ctx)
        xs, targets, soft = prepare(xs, hard) if prepare else (xs, hard, None)
        with autograd.record():
            outputs = [net(x).astype('float32', copy=False) for x in xs]
            if soft is None:
                losses = [loss_fn(o, t) for o, t in zip(outputs, targets)]
            else:
                losses = [loss_fn(o, t, s) for o, t, s in zip(outputs, targets, soft)]
        autograd.backward(losses)
        trainer.step(step_batch)
        stats.add(losses, outputs, hard)
        grads = grads or _gradient_groups(net, ctx[0])
        stats.add_gradients(grads)
        stats.samples += data.shape[0]
        bar.update(data.shape[0])
        if (i + 1) % CHECK_EVERY == 0:
            _check_finite(stats, i, trainer)
        if on_step:
            on_step(i, stats)
    stats.finish()
    if stats.samples:
        _check_finite(stats, i, trainer)
    return stats


def _gradient_groups(net, device):
    """The gradient arrays of ``net`` on ``device``, one list per dtype.

    Known after the first backward pass (deferred initialization), then the same arrays
    every step, so an epoch groups them once.
    """
    by_dtype = {}
    for param in net.collect_params().values():
        if param.grad_req != 'null':
            grad = param.grad(device)
            by_dtype.setdefault(grad.dtype, []).append(grad)
    return list(by_dtype.values())


def _check_finite(stats, step, trainer):
    # A non-finite value makes its running sum non-finite for good, so checking the sums
    # now and then finds any diverged step without waiting for the devices every step.
    if not math.isfinite(stats.loss_sum):
        raise NonFiniteStep(step, trainer.learning_rate, 'loss')
    if not math.isfinite(stats.gradient_sq_sum):
        raise NonFiniteStep(step, trainer.learning_rate, 'gradient norm')
