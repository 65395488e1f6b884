"""One training epoch over a data-parallel batch stream, shared by both recipes."""
import time

from mxnet import autograd, gluon

from .devices import split_batch

__all__ = ['EpochStats', 'train_epoch']


class EpochStats(object):
    """Running loss and top-1 error of an epoch's training batches.

    Attributes
    ----------
    loss_sum : float
        Sum of the per-sample losses.
    correct : float
        Samples whose arg-max output is their (unmixed) label.
    samples : int
    seconds : float
        Wall time of the epoch's training steps, set when the epoch ends.
    """

    def __init__(self):
        self.loss_sum, self.correct, self.samples = 0.0, 0.0, 0
        self.started = time.time()
        self.seconds = None

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
        ``prepare(data, label) -> (data, target, extras)``: augmentation of the batch as a
        whole (mixup, label smoothing) before it is split; ``extras`` is a function of a
        device slice giving the extra loss arguments (or ``None``). Default: the label is
        the target.
    on_step : callable, optional
        ``on_step(i, stats)`` after step ``i`` (0-based), e.g. periodic logging.

    Returns
    -------
    EpochStats
    """
    stats = EpochStats()
    for i, (data, label) in enumerate(batches):
        data, target, extras = prepare(data, label) if prepare else (data, label, None)
        xs, ts = split_batch(data, target, ctx)
        hard = gluon.utils.split_and_load(label, [x.context for x in xs], even_split=False)
        soft = [extras(x) for x in xs] if extras else None
        with autograd.record():
            outputs = [net(x).astype('float32', copy=False) for x in xs]
            if soft is None:
                losses = [loss_fn(o, t) for o, t in zip(outputs, ts)]
            else:
                losses = [loss_fn(o, t, s) for o, t, s in zip(outputs, ts, soft)]
        autograd.backward(losses)
        trainer.step(step_batch)
        stats.loss_sum += sum(loss.sum().asscalar() for loss in losses)
        stats.correct += sum((o.argmax(axis=1) == h.astype('float32')).sum().asscalar()
                             for o, h in zip(outputs, hard))
        stats.samples += data.shape[0]
        bar.update(data.shape[0])
        if on_step:
            on_step(i, stats)
    stats.seconds = time.time() - stats.started
    return stats
