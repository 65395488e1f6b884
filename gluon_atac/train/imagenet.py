"""Train ResNet v1b hosts with attentional activations on ImageNet: ``train_imagenet.py``.

The recipe is the original's (GluonCV's ``train_imagenet.py``): NAG, linear warm-up then
a step/cosine/poly schedule updated every iteration, optional label smoothing, mixup, no
weight decay on BN and biases, zero-initialized last BN gamma, float16 with
multi-precision, and distillation from a teacher. Additions: resumable single-file
checkpoints, per-epoch ``metrics.jsonl``, and data sharding under distributed kvstores,
where the learning rate and batch accounting use the global batch and only rank 0
writes files.
"""
import json
import logging
import os
import re
import sys
import time
import traceback
import warnings

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..cli import cli_main, UsageError
from ..data.imagenet import count_images, train_batches, val_batches
from ..evaluate import topk_errors
from ..model_zoo import get_model, get_model_list
from ..nn import canonical_name
from ..training import (MetricsLog, atomic_write, epoch_seed, load_checkpoint,
                        parse_devices, plot_history, progress, save_checkpoint,
                        seed_everything, setup_logging)
from ..utils.counting import count_params
from ..utils.params import load_parameters
from .evaluation import split_batch
from .imagenet_args import parse_args

__all__ = ['main', 'run', 'checkpoint_tag', 'build_lr_scheduler', 'build_teacher',
           'smooth_labels', 'group_norm']

# GluonCV's eta: the smoothed target puts 1 - eta + eta/K on the class.
_SMOOTHING = 0.1
# The original spells ATAC this way in its file names.
_TAG_SPELLING = {'chaatac': 'ChaATAC'}


def checkpoint_tag(model, act_type):
    """Model part of the original's file names, e.g. ``ResNet50_v1b_ChaATAC``.

    The published checkpoint ``0.2141-imagenet-ResNet50_v1b_ChaATAC-155-best.params``
    spells the host ``ResNet50_v1b`` and appends the activation.
    """
    act = canonical_name(act_type)
    return '%s_%s' % (re.sub(r'^resnet', 'ResNet', model.lower()), _TAG_SPELLING.get(act, act))


def _decay_epochs(args):
    if args.lr_decay_period > 0:
        return list(range(args.lr_decay_period, args.num_epochs, args.lr_decay_period))
    try:
        return [int(e) for e in args.lr_decay_epoch.split(',') if e.strip()]
    except ValueError:
        raise UsageError('--lr-decay-epoch must list integers like 40,60; got %r'
                         % args.lr_decay_epoch) from None


def build_lr_scheduler(args, steps, native=False):
    """Linear warm-up, then ``--lr-mode`` down to 0, updated per iteration.

    Parameters
    ----------
    args : argparse.Namespace
    steps : int
        Optimizer updates per epoch (one per global batch; per worker push under
        dist_async).
    native : bool, default False
        Build the same schedule from ``mxnet.lr_scheduler`` classes instead of GluonCV's.
        Needed where the optimizer is unpickled on kvstore servers (dist_async): they
        serve from inside ``import mxnet`` and cannot import GluonCV.

    Returns
    -------
    gluoncv.utils.LRSequential or mxnet.lr_scheduler.LRScheduler
    """
    decay_epochs = _decay_epochs(args)
    if native:
        warmup = dict(base_lr=args.lr, warmup_steps=args.warmup_epochs * steps,
                      warmup_begin_lr=args.warmup_lr, warmup_mode='linear')
        total = args.num_epochs * steps
        if args.lr_mode == 'cosine':
            return mx.lr_scheduler.CosineScheduler(total, final_lr=0, **warmup)
        if args.lr_mode == 'poly':
            return mx.lr_scheduler.PolyScheduler(total, pwr=2, final_lr=0, **warmup)
        # MultiFactorScheduler wants increasing update counts >= 1 that come after warm-up.
        marks = sorted({e * steps for e in decay_epochs if e > args.warmup_epochs}) or \
            [total + 1]
        return mx.lr_scheduler.MultiFactorScheduler(marks, factor=args.lr_decay, **warmup)
    from gluoncv.utils import LRScheduler, LRSequential

    def phase(mode, epochs, **kwargs):
        # GluonCV divides by (iterations - 1); a one-iteration phase is its first value.
        mode = 'constant' if epochs * steps == 1 else mode
        return LRScheduler(mode, nepochs=epochs, iters_per_epoch=steps, **kwargs)
    return LRSequential([
        phase('linear', args.warmup_epochs, base_lr=args.warmup_lr, target_lr=args.lr),
        phase(args.lr_mode, args.num_epochs - args.warmup_epochs, base_lr=args.lr,
              target_lr=0, step_epoch=[e - args.warmup_epochs for e in decay_epochs],
              step_factor=args.lr_decay, power=2)])


def smooth_labels(label, classes, eta):
    """One-hot targets with ``eta`` of the mass spread evenly over all classes."""
    return label.one_hot(classes, on_value=1 - eta + eta / classes, off_value=eta / classes)


def build_teacher(name, params, classes, ctx, dtype='float32'):
    """A frozen teacher from a gluon_atac or GluonCV model name and a ``.params`` file.

    A name gluon_atac registers builds its default (the paper's ATAC) network; other
    names, and any name written ``gluoncv:NAME``, come from GluonCV's zoo (e.g.
    ``gluoncv:resnet152_v1d`` for GluonCV's ReLU network). The file is loaded with names
    and shapes checked.
    """
    zoo, _, bare = name.rpartition(':')
    if zoo not in ('', 'gluoncv'):
        raise UsageError("--teacher: unknown zoo %r (write NAME or gluoncv:NAME)" % zoo)
    if not zoo and bare.lower() in get_model_list():
        teacher = get_model(bare, classes=classes)
    else:
        import gluoncv
        try:
            teacher = gluoncv.model_zoo.get_model(bare, classes=classes)
        except ValueError:
            raise UsageError('unknown teacher %r: not a gluon_atac or GluonCV model name'
                             % name) from None
    load_parameters(teacher, params, ctx=ctx)
    teacher.cast(dtype)
    teacher.hybridize(static_alloc=True, static_shape=True)
    return teacher


def _devices(args):
    """Contexts, and the warnings to log once a logger exists."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ctx = parse_devices(args.gpus, None if args.gpus else args.num_gpus)
    if args.dtype == 'float16' and all(c.device_type == 'cpu' for c in ctx):
        raise UsageError('--dtype float16 needs a GPU (float16 multi-precision training is '
                         'GPU-only in MXNet) and none is visible; use --dtype float32')
    return ctx, [str(w.message) for w in caught]


def group_norm(in_channels=0, **kwargs):
    """GroupNorm with 32 groups for ``--use-gn``, built like the hosts build their norms.

    MXNet's own layer: GluonCV's ``GroupNorm`` calls ``Reshape`` with arguments MXNet 1.9
    rejects. ``in_channels`` is accepted for the hosts' calls; GroupNorm infers it.
    """
    return gluon.nn.GroupNorm(num_groups=32, **kwargs)


def _kvstore(kind):
    if kind.startswith('dist') and 'DMLC_ROLE' not in os.environ:
        raise UsageError('--kv-store %s needs the DMLC environment: start the workers with '
                         'python -m gluon_atac.launch -n N -s S -- python train_imagenet.py '
                         '...' % kind)
    return mx.kv.create(kind)


def _build_net(args, ctx, logger):
    options = dict(classes=args.classes, act_type=args.act_type, r=args.r,
                   act_layers=args.act_layers, use_global=args.use_global,
                   use_relu=not args.no_relu, last_gamma=args.last_gamma,
                   attention=args.attention, input_size=args.input_size)
    if args.use_gn:
        options['norm_layer'] = group_norm
    net = get_model(args.model, **options)
    seed_everything(args.seed)
    net.initialize(mx.init.MSRAPrelu(), ctx=ctx)
    if 'dist' in args.kv_store:
        # One imperative pass finishes deferred initialization, so the trainer can hand
        # every weight to the kvstore before the first step (see _broadcast_weights).
        for device in ctx:
            net(mx.nd.zeros((1, 3, args.input_size, args.input_size), ctx=device))
    if args.use_pretrained:
        _load_pretrained(net, args, ctx)
    if args.resume_params:
        load_parameters(net, args.resume_params, ctx=ctx)
    shape = (1, 3, args.input_size, args.input_size)
    logger.info('model %s act=%s r=%d act_layers=%d: %s params', args.model, args.act_type,
                args.r, args.act_layers, '{:,}'.format(count_params(net, shape)['total']))
    if args.summary:
        net.summary(mx.nd.zeros(shape, ctx=ctx[0]))
    net.cast(args.dtype)
    if args.no_wd:
        for param in net.collect_params('.*beta|.*gamma|.*bias').values():
            param.wd_mult = 0.0
    if args.mode == 'hybrid':
        net.hybridize(static_alloc=True, static_shape=True)
    return net


def _broadcast_weights(trainer, kv):
    """Give every worker rank 0's weights before anyone pushes a gradient.

    MXNet 1.9's Trainer broadcasts the weights inside its first step, and nothing orders
    that pull before the first gradient push to the same key: a late pull returns the
    summed gradients instead (about one two-worker run in six). Broadcasting here,
    waiting for the pulls and meeting at a barrier closes that window.
    """
    trainer._init_kvstore()
    trainer._init_params()
    mx.nd.waitall()
    kv._barrier()


def _load_pretrained(net, args, ctx):
    """GluonCV's pretrained ReLU weights; names match our ReLU variant exactly."""
    if canonical_name(args.act_type) != 'relu' or args.classes != 1000:
        raise UsageError('--use-pretrained exists only for --act-type relu with 1000 '
                         "classes (GluonCV's ReLU weights)")
    from gluoncv.model_zoo.model_store import get_model_file
    try:
        path = get_model_file(args.model.lower())
    except Exception as err:  # noqa: BLE001 -- any download failure is a usage problem here
        raise UsageError('cannot get pretrained %s weights: %s' % (args.model, err)) from None
    load_parameters(net, path, ctx=ctx)


class _Run(object):
    """Paths and bookkeeping of one training run (files only written on rank 0)."""

    def __init__(self, args, rank):
        self.args, self.rank = args, rank
        self.tag = checkpoint_tag(args.model, args.act_type)
        self.dir = args.save_dir
        self.checkpoint = os.path.join(self.dir, 'checkpoint.ckpt')

    def path(self, name):
        """``name`` inside the save directory."""
        return os.path.join(self.dir, name)

    def save_pair(self, stem, net, trainer):
        """``stem.params`` and (unless ``trainer`` is None) ``stem.states``, atomically."""
        atomic_write(self.path(stem + '.params'), net.save_parameters)
        if trainer is not None:
            atomic_write(self.path(stem + '.states'), trainer.save_states)


def _restore(args, net, trainer, ctx, logger):
    """Start epoch and best error after ``--resume`` or the original's resume flags.

    ``trainer`` is ``None`` when the optimizer states live on the servers (dist_async).
    """
    if args.resume:
        state = load_checkpoint(args.resume, net, trainer, ctx=ctx)
        logger.info('resumed %s after epoch %d (best top-1 err %.4f)', args.resume,
                    state['epoch'], state['best_err'])
        return state['epoch'] + 1, state['best_err']
    if args.resume_states:
        if trainer is None:
            raise UsageError('--resume-states: under --kv-store dist_async the optimizer '
                             'states live on the servers and cannot be loaded')
        if not os.path.isfile(args.resume_states):
            raise FileNotFoundError('trainer states not found: %s' % args.resume_states)
        trainer.load_states(args.resume_states)
    return args.resume_epoch, 1.0


def _targets(args, label, epoch, classes, rng):
    """Training inputs' targets after mixup/label smoothing, and the mixing weight."""
    eta = _SMOOTHING if args.label_smoothing else 0.0
    if args.mixup:
        lam = 1.0 if epoch >= args.num_epochs - args.mixup_off_epoch else \
            float(rng.beta(args.mixup_alpha, args.mixup_alpha))
        target = lam * smooth_labels(label, classes, eta) + \
            (1 - lam) * smooth_labels(label[::-1], classes, eta)
        return target, lam
    if args.label_smoothing:
        return smooth_labels(label, classes, eta), 1.0
    return label, 1.0


def _train_epoch(args, epoch, net, teacher, trainer, loss_fn, ctx, data_plan, bar, logger):
    """One epoch over this worker's shard; returns (mean loss, top-1 err, samples, seen)."""
    batch_size, steps = data_plan['batch'], data_plan['steps']
    total_loss, correct, samples, seen = 0.0, 0.0, 0, []
    # Its own generator: loading folder images in this process re-seeds the global ones.
    rng = np.random.RandomState(epoch_seed(args.seed, epoch))
    tic = time.time()
    for i, (data, label) in enumerate(train_batches(
            data_plan['train'], steps, batch_size, args.input_size, args.num_workers,
            data_plan['parts'], data_plan['part'], seed=data_plan['seed'] + epoch,
            idx=data_plan['train_idx'], seen=seen)):
        target, lam = _targets(args, label, epoch, args.classes, rng)
        if lam != 1.0:
            data = lam * data + (1 - lam) * data[::-1]
        xs, ys = split_batch(data, target, ctx)
        hard = gluon.utils.split_and_load(label, [x.context for x in xs], even_split=False)
        xs = [x.astype(args.dtype, copy=False) for x in xs]
        if teacher is not None:
            soft = [mx.nd.softmax(teacher(x).astype('float32') / args.temperature)
                    for x in xs]
        with autograd.record():
            outputs = [net(x).astype('float32', copy=False) for x in xs]
            if teacher is not None:
                losses = [loss_fn(o, y, p) for o, y, p in zip(outputs, ys, soft)]
            else:
                losses = [loss_fn(o, y) for o, y in zip(outputs, ys)]
        autograd.backward(losses)
        # Synchronous kvstores sum the gradients of every device of every worker.
        trainer.step(data_plan['step_batch'])
        total_loss += sum(loss.sum().asscalar() for loss in losses)
        correct += sum((o.argmax(axis=1) == h).sum().asscalar() for o, h in zip(outputs, hard))
        samples += data.shape[0]
        bar.update(data.shape[0])
        if args.log_interval and (i + 1) % args.log_interval == 0:
            logger.info('Epoch[%d] Batch[%d] speed %.1f samples/s loss %.4f lr %.6f', epoch,
                        i + 1, samples * data_plan['parts'] / (time.time() - tic),
                        total_loss / samples,
                        trainer.optimizer.lr_scheduler(
                            (epoch * steps + i + 1) * data_plan['updates'] // steps))
    return total_loss / samples, 1 - correct / samples, samples, seen


def _loss(args):
    sparse = not (args.label_smoothing or args.mixup)
    if args.teacher:
        from gluoncv.loss import DistillationSoftmaxCrossEntropyLoss
        return DistillationSoftmaxCrossEntropyLoss(temperature=args.temperature,
                                                   hard_weight=args.hard_weight,
                                                   sparse_label=sparse)
    return gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=sparse)


def _per_device_batch(args, images, kv, ctx, logger):
    """``--batch-size``, lowered when a worker's shard cannot fill one batch.

    ``ImageRecordIter`` refuses batches larger than its data; lowering (with a warning)
    lets a recipe run unchanged as a smoke test on a small set.
    """
    shard = images // kv.num_workers
    if args.batch_size * len(ctx) <= shard:
        return args.batch_size
    per_device = shard // len(ctx)
    if per_device < 1:
        raise UsageError('%d training images cannot give each of %d workers x %d devices '
                         'an image' % (images, kv.num_workers, len(ctx)))
    logger.warning('only %d training images per worker: batch size per device lowered '
                   'from %d to %d', shard, args.batch_size, per_device)
    return per_device


def _data_plan(args, kv, ctx, logger):
    """Paths, shard and batch accounting of this worker."""
    if args.use_rec:
        train, train_idx, val, val_idx = (args.rec_train, args.rec_train_idx, args.rec_val,
                                          args.rec_val_idx)
    else:
        train, val = (os.path.join(args.data_dir, s) for s in ('train', 'val'))
        train_idx = val_idx = None
    images = count_images(train, train_idx)
    count_images(val, val_idx)
    batch = _per_device_batch(args, images, kv, ctx, logger) * len(ctx)
    global_batch = batch * kv.num_workers
    steps = max(1, images // global_batch)
    # dist_async applies every worker's push as an update of its own, averaged over that
    # worker's batch; the synchronous kvstores make one update of the global batch a step.
    updates = steps * kv.num_workers if kv.type == 'dist_async' else steps
    step_batch = batch if kv.type == 'dist_async' else global_batch
    return dict(train=train, train_idx=train_idx, val=val, val_idx=val_idx, batch=batch,
                global_batch=global_batch, images=images, parts=kv.num_workers,
                part=kv.rank, steps=steps, updates=updates, step_batch=step_batch,
                seed=args.seed * 1000)


def _write_worker_report(args, kv, net, seen):
    os.makedirs(args.worker_report, exist_ok=True)
    stem = os.path.join(args.worker_report, 'rank%d' % kv.rank)
    atomic_write(stem + '.params', net.save_parameters)
    report = {'rank': kv.rank, 'num_workers': kv.num_workers, 'kv_store': kv.type,
              'images_read': sorted(set(seen)) if seen else None}
    atomic_write(stem + '.json', lambda p: open(p, 'w').write(json.dumps(report)))


def run(args):
    """Train as ``args`` (from :func:`parse_args`) says.

    Returns
    -------
    dict
        ``best_err`` (top-1), ``best_epoch``, ``epochs`` run, ``records`` (rank 0).
    """
    # Refuse unusable devices before anything is created or written.
    ctx, notes = _devices(args)
    kv = _kvstore(args.kv_store)
    rank0 = kv.rank == 0
    logger = setup_logging(args.logging_file if rank0 else None,
                           name='gluon_atac.imagenet.rank%d' % kv.rank)
    for note in notes:
        logger.warning('%s', note)
    if kv.num_workers > 1:
        # Ties the launcher's [worker i] prefix (launch order) to the kvstore's rank.
        logger.info('kvstore %s: this worker is rank %d of %d', kv.type, kv.rank,
                    kv.num_workers)
    plan = _data_plan(args, kv, ctx, logger)
    logger.info('%d training images, %d workers x %d devices x %d per device = global batch '
                '%d, %d steps per epoch', plan['images'], kv.num_workers, len(ctx),
                plan['batch'] // len(ctx), plan['global_batch'], plan['steps'])
    net = _build_net(args, ctx, logger)
    teacher = build_teacher(args.teacher, args.teacher_params, args.classes, ctx,
                            args.dtype) if args.teacher else None
    on_servers = args.kv_store == 'dist_async'
    optimizer_params = {'wd': args.wd, 'momentum': args.momentum,
                        'lr_scheduler': build_lr_scheduler(args, plan['updates'],
                                                           native=on_servers)}
    if args.dtype == 'float16':
        optimizer_params['multi_precision'] = True
    # The kvstore only sums gradients and the trainer updates (update_on_kvstore=False), so
    # the optimizer states stay here and can be saved, under dist_sync too. MXNet runs
    # dist_async updates on the servers only, and their states cannot be saved.
    trainer = gluon.Trainer(net.collect_params(), 'nag', optimizer_params, kvstore=kv,
                            update_on_kvstore=on_servers)
    savable = None if on_servers else trainer
    if 'dist' in kv.type and not on_servers:
        _broadcast_weights(trainer, kv)
    start, best_err = _restore(args, net, savable, ctx, logger)
    # The schedule continues at the start epoch; states saved with another batch size or
    # run length carry another schedule, so ours replaces it.
    schedule = trainer.optimizer.lr_scheduler = optimizer_params['lr_scheduler']
    trainer.optimizer.num_update = start * plan['updates']
    files = _Run(args, kv.rank)
    metrics = MetricsLog(files.path('metrics.jsonl'), resume_epoch=start - 1 if start else None) \
        if rank0 else None
    loss_fn, best_epoch, seen = _loss(args), None, []
    for epoch in range(start, args.num_epochs):
        seed_everything(args.seed, epoch)
        tic = time.time()
        bar = progress(plan['steps'] * plan['batch'], 'epoch %d' % epoch,
                       enabled=rank0 and not args.no_progress)
        loss, train_err, samples, seen = _train_epoch(args, epoch, net, teacher, trainer,
                                                      loss_fn, ctx, plan, bar, logger)
        bar.close()
        seconds = time.time() - tic
        if not rank0:
            continue
        val = topk_errors(net, val_batches(plan['val'], plan['batch'], args.input_size,
                                           args.crop_ratio, args.num_workers, plan['val_idx']),
                          ctx, dtype=args.dtype)
        record = {'epoch': epoch, 'train_loss': loss, 'train_top1_err': train_err,
                  'val_top1_err': val['top1_err'], 'val_top5_err': val['top5_err'],
                  'lr': schedule((epoch + 1) * plan['updates']), 'seconds': seconds,
                  'samples_per_sec': samples * kv.num_workers / seconds}
        metrics.append(record)
        logger.info('[Epoch %d] train loss %.4f top-1 err %.4f | val top-1 err %.4f top-5 '
                    'err %.4f | %.1f s, %.1f samples/s, lr %.6f', epoch, loss, train_err,
                    val['top1_err'], val['top5_err'], seconds, record['samples_per_sec'],
                    record['lr'])
        if val['top1_err'] < best_err:
            best_err, best_epoch = val['top1_err'], epoch
            files.save_pair('%.4f-imagenet-%s-%d-best' % (best_err, files.tag, epoch),
                            net, savable)
        if args.save_frequency and (epoch + 1) % args.save_frequency == 0:
            files.save_pair('imagenet-%s-%d' % (files.tag, epoch), net, savable)
        save_checkpoint(files.checkpoint, net, savable,
                        {'epoch': epoch, 'best_err': best_err, 'args': vars(args)})
        plot_history(metrics.records, files.path('history.png'), {
            'train top-1 err': lambda r: r['train_top1_err'],
            'val top-1 err': lambda r: r['val_top1_err'],
            'val top-5 err': lambda r: r['val_top5_err']}, title=files.tag)
    if rank0:
        files.save_pair('imagenet-%s-%d' % (files.tag, args.num_epochs - 1), net, savable)
    if args.worker_report:
        _write_worker_report(args, kv, net, seen)
    return {'best_err': best_err, 'best_epoch': best_epoch,
            'records': metrics.records if metrics else None}


@cli_main
def _main(argv):
    run(parse_args(argv))


def main(argv=None):
    """Entry point of ``train_imagenet.py``.

    A failing worker of a distributed job exits at once: a normal exit would wait in
    MXNet's kvstore shutdown barrier for peers that are themselves waiting for it, and
    the launcher could never see the failure.
    """
    if os.environ.get('DMLC_ROLE') != 'worker':
        return _main(argv)
    try:
        return _main(argv)
    except SystemExit as stop:
        if not stop.code:
            raise
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 -- any failure must end the process
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
