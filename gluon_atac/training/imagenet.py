"""The ImageNet recipe: ResNet v1b hosts with attentional activations, behind
``train_imagenet.py``.

The recipe is the original's (GluonCV's ``train_imagenet.py``): NAG, linear warm-up then
a step/cosine/poly schedule updated every iteration, optional label smoothing, mixup, no
weight decay on BN and biases, zero-initialized last BN gamma, float16 with
multi-precision, and distillation from a teacher. Additions: resumable single-file
checkpoints, per-epoch ``metrics.jsonl``, and data sharding under distributed kvstores,
where the learning rate and batch accounting use the global batch and only rank 0
writes files; under Horovod (``--kv-store horovod``) a run on N processes of one device
each trains as a one-process run on N devices does.
"""
import json
import os
import re

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..data.imagenet import count_images, train_batches, val_batches
from ..data.integrity import add_pixel_limit_flag, set_max_pixels
from ..errors import UsageError, cli_main
from ..model_zoo import get_model, get_model_list, load_parameters
from ..nn import canonical_name
from ..utils.counting import count_params
from ..data.preprocessing import preprocessing_for
from ..utils.model_card import write_model_card
from ..utils.seeding import epoch_seed, seed_everything
from .engine.args import TrainingParser, add_shared_flags, decay_epochs, require_positive
from .engine.checkpoint import (atomic_write, count, json_object, load_checkpoint, number,
                                save_checkpoint)
from .engine.determinism import make_deterministic
from .engine.devices import (average_running_stats, device_of_process, devices_with_notes,
                             fitting_batch_size)
from .engine.distributed import (batch_plan, broadcast_weights, create_kvstore,
                                 exit_like_a_worker, is_distributed)
from .engine.evaluation import evaluate, scores
from .engine.logs import open_log_file, setup_logging
from .engine.loop import NonFiniteStep, train_epoch
from .engine.losses import (SMOOTHING, build_loss, build_teacher, mixup_lambda,
                            training_targets)
from .engine.metrics import MetricsLog, plot_history
from .engine.progress import progress
from .engine.run_files import RunFiles, RunLock
from .engine.schedule import build_lr_scheduler

__all__ = ['build_parser', 'parse_args', 'checkpoint_tag', 'run', 'main', 'KV_STORES']

KV_STORES = ('local', 'device', 'dist_sync', 'dist_device_sync', 'dist_async', 'horovod')
# _aa and _fa: the self-attention baselines on the v1b host.
_V1B_FAMILY = re.compile(r'^resnet\d+_v1[bcd](_aa|_fa)?$')
_REC = os.path.join('~', '.mxnet', 'datasets', 'imagenet', 'rec')
# The original spells ATAC this way in its file names.
_TAG_SPELLING = {'chaatac': 'ChaATAC'}


def _add_original(p):
    """Flags of the original script not shared with the CIFAR one, with GluonCV's
    ``train_imagenet.py`` defaults."""
    data = p.add_argument_group('data (original flags)')
    data.add_argument('--data-dir', default='~/.mxnet/datasets/imagenet',
                      help='folder with train/<class>/*.jpg and val/<class>/*.jpg')
    data.add_argument('--rec-train', default=os.path.join(_REC, 'train.rec'))
    data.add_argument('--rec-train-idx', default=os.path.join(_REC, 'train.idx'))
    data.add_argument('--rec-val', default=os.path.join(_REC, 'val.rec'))
    data.add_argument('--rec-val-idx', default=os.path.join(_REC, 'val.idx'))
    data.add_argument('--use-rec', action='store_true',
                      help='read the record files instead of --data-dir')
    data.add_argument('--input-size', type=int, default=224)
    data.add_argument('--crop-ratio', type=float, default=0.875,
                      help='validation resize is ceil(input-size / crop-ratio)')
    add_pixel_limit_flag(data)

    model = p.add_argument_group('model (original flags)')
    model.add_argument('--model', default='resnet50_v1b',
                       help='a ResNet v1b/v1c/v1d of gluon_atac.get_model_list()')
    model.add_argument('--r', type=int, default=2, help='ATAC reduction ratio')
    model.add_argument('--act-layers', type=int, default=2,
                       help='stages (from the deepest) using --act-type; 2 = stages 3-4')
    model.add_argument('--use-pretrained', action='store_true',
                       help="start from GluonCV's pretrained ReLU weights (needs them in "
                            "~/.mxnet/models or a download)")
    model.add_argument('--use-gn', action='store_true', help='GroupNorm instead of BN')
    model.add_argument('--last-gamma', action='store_true',
                       help='zero-init the gamma of the last BN of each block')
    model.add_argument('--summary', action='store_true', help='print the model summary')
    model.add_argument('--dtype', default='float32', choices=('float32', 'float16'),
                       help='float16 trains with multi-precision (GPU only)')

    groups = add_shared_flags(p, modes=('imperative', 'hybrid', 'symbolic'))
    train = groups['optimization']
    train.add_argument('--num-gpus', type=int, default=0)
    train.add_argument('--lr-mode', default='step', choices=('step', 'cosine', 'poly'))
    train.add_argument('--warmup-lr', type=float, default=0.0)
    train.add_argument('--warmup-epochs', type=int, default=0)
    train.add_argument('--no-wd', action='store_true',
                       help='no weight decay on BN parameters and biases')
    train.add_argument('--label-smoothing', action='store_true', help='smoothing 0.1')
    train.add_argument('--mixup', action='store_true')
    train.add_argument('--mixup-alpha', type=float, default=0.2)
    train.add_argument('--mixup-off-epoch', type=int, default=0,
                       help='train the last N epochs without mixup')
    train.add_argument('--teacher', default=None,
                       help='distil from this gluon_atac model or GluonCV model '
                            '(gluoncv:NAME forces GluonCV), loaded from --teacher-params')
    train.add_argument('--temperature', type=float, default=20)
    train.add_argument('--hard-weight', type=float, default=0.5)

    out = groups['outputs']
    out.add_argument('--save-frequency', type=int, default=10,
                     help='write imagenet-<model>-<epoch index>.params every N epochs')
    out.add_argument('--resume-epoch', type=int, default=0,
                     help='epochs already done: the run starts with epoch N+1 (0-based '
                          'index N, as in the original)')
    out.add_argument('--resume-params', default='', help='.params to start from')
    out.add_argument('--resume-states', default='', help='.states of the trainer')
    out.add_argument('--log-interval', type=int, default=50, help='batches between logs')
    out.add_argument('--logging-file', default=None,
                     help='log file (default: <save-dir>/train_imagenet.log)')


def _add_ours(p):
    ours = p.add_argument_group('gluon_atac additions')
    ours.add_argument('--gpus', default='',
                      help="GPU ids like '0,1' (overrides --num-gpus)")
    ours.add_argument('--act-type', default='ChaATAC',
                      help='activation of the ATAC stages: ChaATAC, relu, swish, ...')
    ours.add_argument('--use-global', '--useGlobal', dest='use_global', action='store_true',
                      help='ATAC with global (pooled) context')
    ours.add_argument('--no-relu', action='store_true', help='ATAC without its inner ReLU')
    ours.add_argument('--attention', default=None,
                      help='attention module on the residual branch (se, ge), as compared '
                           'in the paper\'s ImageNet table')
    ours.add_argument('--classes', type=int, default=1000)
    ours.add_argument('--teacher-params', default=None,
                      help='.params of --teacher (nothing is downloaded)')
    ours.add_argument('--kv-store', '--kvstore', dest='kv_store', default='device',
                      choices=KV_STORES,
                      help='dist_* kvstores need the DMLC environment (gluon_atac.launch); '
                           'horovod runs one device per process under horovodrun')
    ours.add_argument('--resume', default=None, metavar='CKPT',
                      help='continue from <save-dir>/checkpoint.ckpt (net, trainer states, '
                           'epoch, schedule, best score)')
    ours.add_argument('--worker-report', default=None, metavar='DIR',
                      help='every worker writes its final parameters and the folder images '
                           'it read in the last epoch to DIR/rank<k>.params/.json (checks '
                           'distributed runs)')


def build_parser():
    """The ``train_imagenet.py`` argument parser."""
    p = TrainingParser(description='Train a ResNet v1b with attentional activations on '
                                   'ImageNet (flags of the original open-atac script).')
    _add_original(p)
    _add_ours(p)
    return p


def parse_args(argv=None):
    """Parse and check ``argv``; paths get ``~`` expanded, ``decay_epochs`` is added.

    Raises
    ------
    UsageError
        For values no run could use.
    """
    args = build_parser().parse_args(argv)
    for name in ('data_dir', 'rec_train', 'rec_train_idx', 'rec_val', 'rec_val_idx'):
        setattr(args, name, os.path.expanduser(getattr(args, name)))
    require_positive(args, ('batch_size', 'num_epochs', 'input_size', 'classes'))
    if not 0 <= args.warmup_epochs < args.num_epochs:
        raise UsageError('--warmup-epochs must be in [0, --num-epochs)')
    if not 0 <= args.resume_epoch < args.num_epochs:
        raise UsageError('--resume-epoch must be in [0, --num-epochs)')
    if args.teacher and not args.teacher_params:
        raise UsageError('--teacher needs --teacher-params FILE (nothing is downloaded)')
    if args.resume and (args.resume_params or args.resume_states or args.resume_epoch):
        raise UsageError('--resume restores everything; drop --resume-params/-states/-epoch')
    hosts = [n for n in get_model_list() if _V1B_FAMILY.match(n)]
    if args.model.lower() not in hosts:
        raise UsageError('--model must be a ResNet v1b/v1c/v1d host: %s' % ', '.join(hosts))
    args.mode = 'hybrid' if args.mode == 'symbolic' else args.mode
    set_max_pixels(args.max_pixels)
    args.decay_epochs = decay_epochs(args)
    # The original wrote train_imagenet.log into the working directory; runs that do not
    # name a log keep it with their other files instead.
    args.logging_file = args.logging_file or os.path.join(args.save_dir, 'train_imagenet.log')
    return args


def checkpoint_tag(model, act_type):
    """Model part of the original's file names, e.g. ``ResNet50_v1b_ChaATAC``.

    The published checkpoint ``0.2141-imagenet-ResNet50_v1b_ChaATAC-155-best.params``
    spells the host ``ResNet50_v1b`` and appends the activation.
    """
    act = canonical_name(act_type)
    return '%s_%s' % (re.sub(r'^resnet', 'ResNet', model.lower()), _TAG_SPELLING.get(act, act))


def _devices(args):
    """Contexts, and the warnings to log once a logger exists."""
    ctx, notes = devices_with_notes(args.gpus, None if args.gpus else args.num_gpus)
    if args.dtype == 'float16' and all(c.device_type == 'cpu' for c in ctx):
        raise UsageError('--dtype float16 needs a GPU (float16 multi-precision training is '
                         'GPU-only in MXNet) and none is visible; use --dtype float32')
    return ctx, notes


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


def architecture(args):
    """``get_model`` keyword arguments of the network ``args`` describe."""
    return dict(classes=args.classes, act_type=args.act_type, r=args.r,
                act_layers=args.act_layers, use_global=args.use_global,
                use_relu=not args.no_relu, last_gamma=args.last_gamma,
                attention=args.attention, input_size=args.input_size,
                **({'norm_layer': 'groupnorm'} if args.use_gn else {}))


def _write_card(args):
    """``model.json`` beside the run's parameter files (rank 0)."""
    write_model_card(args.save_dir, args.model.lower(), architecture(args), args.classes,
                     'imagenet', preprocessing_for('imagenet', args.input_size,
                                                   args.crop_ratio))


def _build_net(args, ctx, logger):
    """The host, initialized, cast to ``--dtype``, then loaded, hybridized last.

    The original cast before loading, so a file (float16 from the published run, or
    float32) is read into the dtype the run computes in.
    """
    net = get_model(args.model, **architecture(args))
    seed_everything(args.seed)
    net.initialize(mx.init.MSRAPrelu(), ctx=ctx)
    shape = (1, 3, args.input_size, args.input_size)
    # One imperative pass finishes deferred initialization now, on any kvstore: the
    # trainer can then hand every weight to a distributed kvstore before the first step
    # (see broadcast_weights), and the initial weights do not depend on the kvstore (a
    # Horovod job starts from the weights a one-process run starts from).
    for device in ctx:
        net(mx.nd.zeros(shape, ctx=device))
    logger.info('model %s act=%s r=%d act_layers=%d: %s params', args.model, args.act_type,
                args.r, args.act_layers, '{:,}'.format(count_params(net, shape)['total']))
    if args.summary:
        net.summary(mx.nd.zeros(shape, ctx=ctx[0]))
    net.cast(args.dtype)
    if args.use_pretrained:
        _load_pretrained(net, args, ctx)
    if args.resume_params:
        load_parameters(net, args.resume_params, ctx=ctx)
    if args.no_wd:
        for param in net.collect_params('.*beta|.*gamma|.*bias').values():
            param.wd_mult = 0.0
    if args.mode == 'hybrid':
        net.hybridize(static_alloc=True, static_shape=True)
    return net


# The run state a checkpoint must hold, checked before anything acts on it.
_STATE_CHECKS = {'epoch': count(), 'best_err': number(0, 1), 'args': json_object}


def _restore(args, net, trainer, ctx, logger):
    """Epochs already done and best error after ``--resume`` or the original's flags.

    ``trainer`` is ``None`` when the optimizer states live on the servers (dist_async).
    """
    if args.resume:
        state = load_checkpoint(args.resume, net, trainer, ctx=ctx, checks=_STATE_CHECKS)
        logger.info('resumed %s after epoch %d (best top-1 err %.4f)', args.resume,
                    state['epoch'], state['best_err'])
        return state['epoch'], state['best_err']
    if args.resume_states:
        if trainer is None:
            raise UsageError('--resume-states: under --kv-store dist_async the optimizer '
                             'states live on the servers and cannot be loaded')
        if not os.path.isfile(args.resume_states):
            raise FileNotFoundError('trainer states not found: %s' % args.resume_states)
        trainer.load_states(args.resume_states)
    return args.resume_epoch, 1.0


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
    per_device = fitting_batch_size(args.batch_size, images, len(ctx), logger,
                                    workers=kv.num_workers)
    plan = batch_plan(images, per_device, len(ctx), kv, folders=not args.use_rec)
    plan.update(train=train, train_idx=train_idx, val=val, val_idx=val_idx,
                seed=args.seed * 1000)
    return plan


def _batch_preparation(args, epoch, teacher, rng):
    """The per-device targets (label smoothing, mixup) and teacher outputs of ``epoch``.

    Mixup draws one weight per batch and mixes each device's slice with its own reverse,
    as GluonCV's ``train_imagenet.py`` does: the pairs are those of the slices, not of
    the whole batch, which changes nothing in expectation (batches are shuffled).
    """
    eta = SMOOTHING if args.label_smoothing else 0.0

    def prepare(xs, ys):
        lam = mixup_lambda(rng, args.mixup_alpha, epoch - 1, args.num_epochs,
                           args.mixup_off_epoch) if args.mixup else None
        if lam is not None and lam != 1.0:
            xs = [lam * x + (1 - lam) * x[::-1] for x in xs]
        xs = [x.astype(args.dtype, copy=False) for x in xs]
        targets = [training_targets(y, args.classes, eta, lam) for y in ys]
        soft = None if teacher is None else [
            mx.nd.softmax(teacher(x).astype('float32') / args.temperature) for x in xs]
        return xs, targets, soft
    return prepare


def _write_worker_report(args, kv, net, seen):
    os.makedirs(args.worker_report, exist_ok=True)
    stem = os.path.join(args.worker_report, 'rank%d' % kv.rank)
    atomic_write(stem + '.params', net.save_parameters)
    # In reading order: under Horovod, batch by batch the slice of one device.
    report = {'rank': kv.rank, 'num_workers': kv.num_workers, 'kv_store': kv.type,
              'images_read': list(seen) if seen else None}
    atomic_write(stem + '.json', lambda p: open(p, 'w').write(json.dumps(report)))


def _build_trainer(args, net, kv, plan):
    """NAG with the per-iteration schedule: the trainer, the trainer whose states can be
    saved (``None`` under dist_async) and the schedule.

    The kvstore only sums gradients and the trainer updates (``update_on_kvstore=False``),
    so the optimizer states stay here and can be saved, under dist_sync too. MXNet runs
    dist_async updates on the servers only, and their states cannot be saved. Under
    Horovod, ``hvd.DistributedTrainer`` sums the gradients by allreduce and updates here.
    """
    on_servers = args.kv_store == 'dist_async'
    optimizer_params = {'wd': args.wd, 'momentum': args.momentum,
                        'lr_scheduler': build_lr_scheduler(args, plan['updates'],
                                                           native=on_servers)}
    if args.dtype == 'float16':
        optimizer_params['multi_precision'] = True
    # As GluonCV: a kvstore name for one machine, so the Trainer keeps none for a single
    # device; the distributed kvstore object is shared with the batch plan and broadcast.
    if kv.type == 'horovod':
        trainer = kv.hvd.DistributedTrainer(net.collect_params(), 'nag', optimizer_params)
    else:
        trainer = gluon.Trainer(net.collect_params(), 'nag', optimizer_params,
                                kvstore=kv if 'dist' in kv.type else kv.type,
                                update_on_kvstore=on_servers)
    if is_distributed(kv.type) and not on_servers:
        broadcast_weights(trainer, kv)
    elif not on_servers:
        # MXNet's Trainer otherwise sets up its kvstore in the first step, after the first
        # forward pass, and copies the first device's values of every parameter to the
        # others then: BatchNorm running statistics too, dropping the other devices' first
        # update of them (a Horovod rank keeps its own, as each device should).
        trainer._init_kvstore()
        trainer._init_params()
    return trainer, None if on_servers else trainer, optimizer_params['lr_scheduler']


def _step_logger(args, epoch, trainer, plan, logger):
    """Logs speed, loss and learning rate every ``--log-interval`` batches."""
    def log(i, stats):
        if args.log_interval and (i + 1) % args.log_interval == 0:
            done = ((epoch - 1) * plan['steps'] + i + 1) * plan['updates'] // plan['steps']
            logger.info('Epoch[%d] Batch[%d] speed %.1f samples/s loss %.4f lr %.6f', epoch,
                        i + 1, stats.samples_per_sec(plan['workers']), stats.loss,
                        trainer.optimizer.lr_scheduler(done))
    return log


def _scorer(args, net, ctx, kv):
    """``scored()``: the network to evaluate, ``net`` itself but under Horovod.

    There it is a second network given ``net``'s current values each time: inference
    lets MXNet's oneDNN convolutions keep their weights in a blocked layout, after which
    the ranks' updates of the same gradients stopped agreeing bit for bit (in about half
    of two-epoch runs on this project's machine, never without the evaluation).
    """
    if kv.type != 'horovod':
        return lambda: net
    twin = get_model(args.model, **architecture(args))
    twin.initialize(ctx=ctx)
    twin(mx.nd.zeros((1, 3, args.input_size, args.input_size), ctx=ctx[0]))
    twin.cast(args.dtype)
    if args.mode == 'hybrid':
        twin.hybridize(static_alloc=True, static_shape=True)
    pairs = [(param, net._collect_params_with_prefix()[name])
             for name, param in twin._collect_params_with_prefix().items()]

    def scored():
        for param, source in pairs:
            param.set_data(source.data(ctx[0]))
        return twin
    return scored


def _validate(args, scored, plan, ctx, kv):
    """Validation scores; under Horovod every worker scores its slice and they add up, so
    every worker has the scores of the whole set."""
    val = evaluate(scored(), val_batches(plan['val'], plan['val_batch'], args.input_size,
                                    args.crop_ratio, args.num_workers, plan['val_idx'],
                                    replica=plan['val_replica']),
                   ctx, dtype=args.dtype)
    if kv.type != 'horovod':
        return val
    return scores(*kv.sum([val['top1_hits'], val['topk_hits'], val['images']], 'val'))


def _end_epoch(args, net, scored, plan, stats, ctx, kv):
    """Validation scores of every worker's epoch, after the workers' BatchNorm running
    statistics (and, under Horovod, the training sums) are made the job's; ``scored``
    from :func:`_scorer`."""
    # The score logged and every file written then hold the same statistics.
    average_running_stats(net)
    if kv.type == 'horovod':
        # As on the devices of one process: each process ran its own BN statistics.
        kv.average_({name: param.data() for name, param in
                     net.collect_params('.*running_mean|.*running_var').items()}, 'bn.')
        stats.combine(lambda values: kv.sum(values, 'epoch'))
        return _validate(args, scored, plan, ctx, kv)
    return _validate(args, scored, plan, ctx, kv) if kv.rank == 0 else None


def _log_epoch(args, epoch, plan, state, stats, val, logger):
    """The epoch's ``metrics.jsonl`` record, logged."""
    # Under dist_* the training sums are rank 0's alone; Horovod's workers added theirs.
    unseen = 1 if plan['job_sums'] else plan['workers']
    record = {'epoch': epoch, 'train_loss': stats.loss, 'train_top1_err': 1 - stats.accuracy,
              'val_top1_err': val['top1_err'], 'val_top5_err': val['top5_err'],
              'lr': state['schedule'](epoch * plan['updates']), 'seconds': stats.seconds,
              'samples_per_sec': stats.samples * unseen / stats.seconds}
    logger.info('[Epoch %d] train loss %.4f top-1 err %.4f | val top-1 err %.4f top-5 '
                'err %.4f | %.1f s, %.1f samples/s, lr %.6f', epoch, stats.loss,
                record['train_top1_err'], val['top1_err'], val['top5_err'], stats.seconds,
                record['samples_per_sec'], record['lr'])
    return record


def _save(args, epoch, net, savable, files, state, record):
    """Rank 0's end of an epoch: metrics, best and periodic files, checkpoint."""
    state['metrics'].append(record)
    # The original's file names carry the 0-based epoch index.
    if record['val_top1_err'] < state['best_err']:
        state['best_err'], state['best_epoch'] = record['val_top1_err'], epoch
        RunFiles.save_pair(files.best_stem(state['best_err'], epoch - 1), net, savable)
    if args.save_frequency and epoch % args.save_frequency == 0:
        RunFiles.save_pair(files.snapshot_stem(epoch - 1), net, savable)
    save_checkpoint(files.checkpoint, net, savable,
                    {'epoch': epoch, 'best_err': state['best_err'], 'args': vars(args)})
    plot_history(state['metrics'].records, files.history, {
        'train top-1 err': lambda r: r['train_top1_err'],
        'val top-1 err': lambda r: r['val_top1_err'],
        'val top-5 err': lambda r: r['val_top5_err']}, title=files.model_tag)


def _last_good(args, files, epoch, done):
    """The checkpoint a run diverging in ``epoch`` leaves, and the epoch it holds."""
    if epoch - 1 > done:
        return files.checkpoint, epoch - 1
    return (args.resume, done) if args.resume else (files.checkpoint, 0)


def run(args):
    """Train as ``args`` (from :func:`parse_args`) says.

    Returns
    -------
    dict
        ``best_err`` (top-1), ``best_epoch`` (1-based) and ``records`` (rank 0).
    """
    # Refuse unusable devices before anything is created or written.
    ctx, notes = _devices(args)
    kv = create_kvstore(args.kv_store)
    if kv.type == 'horovod':
        ctx = device_of_process(ctx, kv.local_rank)
    if kv.rank:
        return _train(args, ctx, notes, kv)
    # Taken before rank 0 writes anything, so a second run leaves the first one's files be.
    with RunLock(args.save_dir):
        # The original's resume (--resume-params with --resume-epoch N) continues too.
        if not (args.resume or args.resume_epoch):
            RunFiles(args.save_dir, 'imagenet', None).refuse_fresh_start('--resume',
                                                                         args.overwrite)
        return _train(args, ctx, notes, kv)


def _train(args, ctx, notes, kv):
    rank0 = kv.rank == 0
    logger = setup_logging(args.logging_file if rank0 else None,
                           name='gluon_atac.imagenet.rank%d' % kv.rank, defer=True)
    for note in notes:
        logger.warning('%s', note)
    if args.deterministic:
        logger.info('deterministic: MXNet naive engine, one thread')
    if kv.num_workers > 1:
        # Ties the launcher's [worker i] prefix (launch order) to the kvstore's rank.
        logger.info('kvstore %s: this worker is rank %d of %d on %s', kv.type, kv.rank,
                    kv.num_workers, ctx[0])
    plan = _data_plan(args, kv, ctx, logger)
    logger.info('%d training images, %d workers x %d devices x %d per device = global batch '
                '%d, %d steps per epoch', plan['images'], kv.num_workers, len(ctx),
                plan['batch'] // len(ctx), plan['global_batch'], plan['steps'])
    net = _build_net(args, ctx, logger)
    teacher = build_teacher(args.teacher, args.teacher_params, args.classes, ctx,
                            args.dtype) if args.teacher else None
    trainer, savable, schedule = _build_trainer(args, net, kv, plan)
    done, best_err = _restore(args, net, savable, ctx, logger)
    # The schedule continues after the epochs done; states saved with another batch size
    # or run length carry another schedule, so ours replaces it.
    trainer.optimizer.lr_scheduler = schedule
    trainer.optimizer.num_update = done * plan['updates']
    files = RunFiles(args.save_dir, 'imagenet', checkpoint_tag(args.model, args.act_type),
                     args.logging_file)
    if rank0:
        # Every check has passed (devices, data, a resumed file that fits): only now is
        # anything in the folder written, so a refused run leaves the one it named be.
        open_log_file(logger)
        _write_card(args)
    state = {'best_err': best_err, 'best_epoch': None, 'schedule': schedule,
             'metrics': MetricsLog(files.metrics, resume_epoch=done) if rank0 else None}
    loss_fn = build_loss(not (args.label_smoothing or args.mixup), teacher is not None,
                         args.temperature, args.hard_weight)
    scored = _scorer(args, net, ctx, kv)
    seen = []
    for epoch in range(done + 1, args.num_epochs + 1):
        seed_everything(args.seed, epoch - 1)
        # Its own generator: loading folder images in this process re-seeds the global ones.
        rng = np.random.RandomState(epoch_seed(args.seed, epoch - 1))
        bar = progress(plan['steps'] * plan['batch'], 'epoch %d' % epoch,
                       enabled=rank0 and not args.no_progress)
        seen = []
        batches = train_batches(plan['train'], plan['steps'], plan['read_batch'],
                                args.input_size, args.num_workers, plan['parts'],
                                plan['part'], seed=plan['seed'] + epoch - 1,
                                idx=plan['train_idx'], seen=seen, replica=plan['replica'])
        try:
            stats = train_epoch(net, trainer, batches, ctx, loss_fn, plan['step_batch'], bar,
                                prepare=_batch_preparation(args, epoch, teacher, rng),
                                on_step=_step_logger(args, epoch, trainer, plan, logger))
        except NonFiniteStep as err:
            raise err.in_run(epoch, *_last_good(args, files, epoch, done)) from None
        bar.close()
        val = _end_epoch(args, net, scored, plan, stats, ctx, kv)
        if val is not None:
            record = _log_epoch(args, epoch, plan, state, stats, val, logger)
            if rank0:
                _save(args, epoch, net, savable, files, state, record)
    if rank0:
        RunFiles.save_pair(files.snapshot_stem(args.num_epochs - 1), net, savable)
    if args.worker_report:
        _write_worker_report(args, kv, net, seen)
    return {'best_err': state['best_err'], 'best_epoch': state['best_epoch'],
            'records': state['metrics'].records if rank0 else None}


@cli_main
def _main(argv):
    args = parse_args(argv)
    if args.deterministic:
        make_deterministic(restart=argv is None)
    run(args)


def main(argv=None):
    """Entry point of ``train_imagenet.py``; bad input exits 2 with one ``error:`` line.

    A failing worker of a distributed job ends its process at once (see
    :func:`gluon_atac.training.engine.distributed.exit_like_a_worker`).
    """
    return exit_like_a_worker(_main, argv)
