"""Train and evaluate CIFAR pre-activation ResNets: the logic behind ``train_cifar.py``.

The recipe is the original's: NAG with momentum, weight decay on every parameter, step
decay of the learning rate, MSRAPrelu initialization, random crop (padding 4) and mirror
augmentation, the last partial batch dropped, and the best test accuracy reported.
Everything random is re-seeded per epoch from ``--seed``, so a resumed run repeats an
uninterrupted one exactly on the CPU.
"""
import os
import time
import warnings

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..cli import cli_main, UsageError
from ..data import get_dataset, eval_loader, train_loader
from ..model_zoo import get_model
from ..nn import canonical_name
from ..training import (MetricsLog, epoch_seed, parse_devices, plot_history, progress,
                        seed_everything, setup_logging)
from .cifar_args import model_spec, parse_args
from .cifar_state import RunFiles, restore, save_best, save_state
from .evaluation import evaluate_cifar, model_costs, split_batch

__all__ = ['main', 'run', 'lr_at', 'evaluate_cifar']


def lr_at(epoch, base_lr, decay, decay_epochs):
    """Learning rate of 0-based ``epoch``: ``base_lr`` decayed once per passed decay epoch.

    As in the original, a decay epoch ``d`` lowers the rate from epoch ``d`` on.
    """
    return base_lr * decay ** sum(1 for d in decay_epochs if d <= epoch)


def _devices(args, logger):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ctx = parse_devices(args.gpus)
    for warning in caught:
        logger.warning('%s', warning.message)
    return ctx


def _build_net(args, classes, ctx, logger):
    try:
        net = get_model(args.zoo_name, **model_spec(args, classes))
    except TypeError as err:
        if 'attention' in str(err):
            raise UsageError('this get_model does not accept attention=%r'
                             % args.attention) from None
        raise
    seed_everything(args.seed, 0)
    net.initialize(mx.init.MSRAPrelu(), ctx=ctx)
    params, macs = model_costs(args.zoo_name, **model_spec(args, classes))
    logger.info('model %s act=%s r=%d useReLU=%s useGlobal=%s act_layers=%d: %d params, '
                '%.4f GMACs', args.zoo_name, args.act_type, args.r, args.useReLU,
                args.useGlobal, args.act_layers, params, macs / 1e9)
    if args.summary:
        net.summary(mx.nd.zeros((1, 3, 32, 32), ctx=ctx[0]))
    if args.mode == 'hybrid':
        net.hybridize(static_alloc=True, static_shape=True)
    return net


def _log_data(args, data, logger):
    logger.info('%s: %d training and %d test images, %d classes', args.dataset,
                len(data.train[0]), len(data.test[0]), data.classes)
    if args.coarse_labels:
        logger.info('--coarse-labels: training on the 20 CIFAR-100 superclasses; this '
                    "reproduces the paper's published 'CIFAR-100' figure, which was coarse")
    elif args.dataset == 'cifar100':
        logger.info('CIFAR-100 fine labels (100 classes); the published figures used the '
                    '20 coarse labels (--coarse-labels reproduces them)')


def _batch_size(args, data, ctx, logger):
    per_device = args.batch_size
    if per_device * len(ctx) > len(data.train[0]):
        per_device = len(data.train[0]) // len(ctx)
        if per_device < 1:
            raise UsageError('%d training images cannot fill %d devices'
                             % (len(data.train[0]), len(ctx)))
        logger.warning('only %d training images: batch size per device lowered from %d to '
                       '%d so an epoch has one full batch', len(data.train[0]),
                       args.batch_size, per_device)
    return per_device * len(ctx)


def _train_epoch(net, trainer, loader, ctx, batch_size, bar):
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    metric = mx.metric.Accuracy()
    total_loss, seen = 0.0, 0
    for data, label in loader:
        xs, ys = split_batch(data, label, ctx)
        with autograd.record():
            outputs = [net(x) for x in xs]
            losses = [loss_fn(out, y) for out, y in zip(outputs, ys)]
        autograd.backward(losses)
        trainer.step(batch_size)
        total_loss += sum(loss.sum().asscalar() for loss in losses)
        metric.update(ys, outputs)
        seen += data.shape[0]
        bar.update(data.shape[0])
    return metric.get()[1], total_loss / max(seen, 1), seen


def _history(files, records, model_name, plot_dir):
    curves = {'train error': lambda r: 1 - r['train_acc'],
              'test error': lambda r: 1 - r['val_acc']}
    plot_history(records, files.history, curves, title=model_name)
    if plot_dir:
        os.makedirs(plot_dir, exist_ok=True)
        plot_history(records, os.path.join(plot_dir, '%s_history.png' % model_name), curves,
                     title=model_name)


def _fit(args, net, data, ctx, files, logger):
    trainer = gluon.Trainer(net.collect_params(), 'nag',
                            {'learning_rate': args.lr, 'wd': args.wd, 'momentum': args.momentum})
    state = restore(args, net, trainer, ctx, logger)
    metrics = MetricsLog(files.metrics, resume_epoch=state['epoch'])
    batch_size = _batch_size(args, data, ctx, logger)
    val_data = eval_loader(data, batch_size, args.num_workers)
    for epoch in range(state['epoch'], args.num_epochs):
        start = time.time()
        seed_everything(args.seed, epoch + 1)
        rng = np.random.RandomState(epoch_seed(args.seed, epoch + 1))
        lr = lr_at(epoch, args.lr, args.lr_decay, args.decay_epochs)
        trainer.set_learning_rate(lr)
        loader = train_loader(data, batch_size, rng, args.num_workers)
        bar = progress(len(loader) * batch_size, 'epoch %d/%d' % (epoch + 1, args.num_epochs),
                       enabled=not args.no_progress)
        train_acc, train_loss, seen = _train_epoch(net, trainer, loader, ctx, batch_size, bar)
        bar.close()
        train_seconds = time.time() - start
        val_acc = evaluate_cifar(net, val_data, ctx)
        state['epoch'] = epoch + 1
        state['lr_decay_count'] = sum(1 for d in args.decay_epochs if d <= epoch)
        if val_acc > state['best_val_acc']:
            save_best(files, net, val_acc, epoch + 1, state, logger)
        record = dict(epoch=epoch + 1, train_acc=train_acc, train_loss=train_loss,
                      val_acc=val_acc, best_val_acc=state['best_val_acc'], lr=lr,
                      seconds=time.time() - start, samples_per_sec=seen / train_seconds)
        metrics.append(record)
        logger.info('[Epoch %d/%d] train_acc=%.4f loss=%.4f val_acc=%.4f best=%.4f lr=%g '
                    '%.1fs %.0f img/s', epoch + 1, args.num_epochs, train_acc, train_loss,
                    val_acc, state['best_val_acc'], lr, record['seconds'],
                    record['samples_per_sec'])
        _history(files, metrics.records, files.model_name, args.save_plot_dir)
        if (epoch + 1) % args.save_period == 0 or epoch + 1 == args.num_epochs:
            save_state(files, net, trainer, state)
    logger.info('best test accuracy %.4f at epoch %s (%s)', state['best_val_acc'],
                state['best_epoch'], files.best)
    return dict(state, records=metrics.records, save_dir=files.save_dir)


def run(args):
    """Train (or with ``args.eval_only`` evaluate) as parsed by :func:`parse_args`.

    Returns
    -------
    dict
        Training: the final run state (``epoch``, ``best_val_acc``, ``best_epoch``,
        ``best_file`` ...), ``records`` (the metrics) and ``save_dir``. Evaluation:
        ``val_acc`` and ``images``.
    """
    files = RunFiles(args.save_dir, '%s_%s' % (args.zoo_name, canonical_name(args.act_type)))
    log_file = args.log_file or (None if args.eval_only else files.log)
    logger = setup_logging(log_file)
    ctx = _devices(args, logger)
    if args.drop_rate:
        logger.warning('--drop-rate %g is ignored: the original applied it to wide ResNets '
                       'only', args.drop_rate)
    data = get_dataset(args.dataset, args.data_dir, args.coarse_labels, logger)
    _log_data(args, data, logger)
    net = _build_net(args, data.classes, ctx, logger)
    if not args.eval_only:
        return _fit(args, net, data, ctx, files, logger)
    restore(args, net, None, ctx, logger)
    val_acc = evaluate_cifar(net, eval_loader(data, args.batch_size * len(ctx),
                                              args.num_workers), ctx)
    logger.info('test accuracy of %s: %.4f (%d images)', args.resume_from, val_acc,
                len(data.test[0]))
    return {'val_acc': val_acc, 'images': len(data.test[0])}


@cli_main
def main(argv=None):
    """Entry point of ``train_cifar.py``; bad input exits 2 with one ``error:`` line.

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.

    Returns
    -------
    dict
        See :func:`run`.
    """
    return run(parse_args(argv))
