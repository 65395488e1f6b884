"""The CIFAR recipe: pre-activation ResNets with ATAC or another activation, behind
``train_cifar.py``.

The recipe is the original's: NAG with momentum, weight decay on every parameter, step
decay of the learning rate at the listed epochs, MSRAPrelu initialization, random crop
(padding 4) and mirror augmentation, the last partial batch dropped, and the best test
accuracy reported. Everything random is re-seeded per epoch from ``--seed``, so a resumed
run repeats an uninterrupted one exactly on the CPU.
"""
import os
import time

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..data import DATASETS, eval_loader, get_dataset, train_loader
from ..data.preprocessing import preprocessing_for
from ..errors import CheckpointError, UsageError, cli_main
from ..model_zoo import get_model, load_parameters
from ..nn import canonical_name
from ..trained import fill_in, given_or_saved
from ..utils.model_card import find_model_card, write_model_card
from ..utils.seeding import epoch_seed, seed_everything
from .engine.args import TrainingParser, add_shared_flags, decay_epochs, require_positive
from .engine.checkpoint import (atomic_write, count, is_checkpoint, json_object,
                                load_checkpoint, number, optional, pause_point,
                                save_checkpoint)
from .engine.determinism import make_deterministic
from .engine.devices import average_running_stats, devices_with_notes, fitting_batch_size
from .engine.evaluation import evaluate, model_costs
from .engine.logs import open_log_file, setup_logging
from .engine.loop import NonFiniteStep, train_epoch
from .engine.metrics import MetricsLog, plot_history
from .engine.progress import progress
from .engine.run_files import RunFiles, RunLock
from .engine.schedule import step_lr

__all__ = ['build_parser', 'parse_args', 'model_spec', 'run', 'main']

# Arguments that change what a resumed run computes; a mismatch is worth a warning (when
# only evaluating, of the model and data ones).
_MODEL_KEYS = ('dataset', 'coarse_labels', 'zoo_name', 'act_type', 'r', 'useReLU',
               'useGlobal', 'act_layers', 'attention')
_RUN_KEYS = _MODEL_KEYS + ('seed', 'batch_size', 'gpus', 'lr', 'lr_decay', 'decay_epochs',
                           'wd', 'momentum')


def build_parser():
    """The ``train_cifar.py`` argument parser.

    Defaults of the original's flags are GluonCV's ``train_cifar10.py`` ones, except
    ``--gpus`` (empty: the CPU).
    """
    p = TrainingParser(description='Train a CIFAR pre-activation ResNet with ATAC or another '
                                   'activation (flags of the original open-atac script).')
    model = p.add_argument_group('model (original flags)')
    model.add_argument('--model', default=None,
                       help="'atac' (default) or 'resnet' (both: cifar_resnet<6*blocks+2>_v2, "
                            "ChaATAC resp. relu by default), or a cifar_resnet*_v2 name")
    model.add_argument('--blocks', type=int, default=None,
                       help='blocks per stage (depth 6b+2; default 3)')
    model.add_argument('--act-type', default=None,
                       help='activation: ChaATAC (alias atac), relu, prelu, elu, selu, '
                            'gelu, swish, xunit')
    # Defaults are None so that --eval-only can tell a flag given from one left to the
    # model card; _TRAINER_DEFAULTS fills in the rest.
    model.add_argument('--r', type=int, default=None, help='ATAC reduction ratio (default 2)')
    model.add_argument('--act-layers', type=int, default=None,
                       help='places (3 stages + head, from the head back) using --act-type '
                            '(default 4)')
    model.add_argument('--useGlobal', action='store_true', default=None,
                       help='ATAC with global (pooled) context')
    model.add_argument('--useReLU', action='store_true', default=None,
                       help='ATAC inner ReLU (off unless given, as in the original)')
    model.add_argument('--summary', action='store_true', help='print the model summary')
    model.add_argument('--drop-rate', type=float, default=0.0,
                       help='dropout of wide ResNets in the original; unused by these hosts')
    model.add_argument('--attention', default=None,
                       help='attention module passed to get_model(attention=...)')

    data = p.add_argument_group('data')
    data.add_argument('--dataset', default=None, choices=DATASETS,
                      help='default cifar10 (with --eval-only: the model card\'s)')
    data.add_argument('--data-dir', default=None,
                      help='folder with the official CIFAR files (either layout); default '
                           '$MXNET_HOME/datasets/<dataset>, where Gluon downloads')
    data.add_argument('--coarse-labels', action='store_true',
                      help="cifar100: the 20 coarse labels (reproduces the paper's figure)")

    groups = add_shared_flags(p)
    groups['optimization'].add_argument('--gpus', default='',
                                        help="GPU ids like '0,1'; empty: the CPU")
    out = groups['outputs']
    out.add_argument('--save-period', type=int, default=10,
                     help='also keep cifar-<model>-<epoch>.params every N epochs '
                          '(checkpoint.ckpt is rewritten after every epoch)')
    out.add_argument('--resume-from', default=None,
                     help='checkpoint.ckpt to continue, or a .params file (weights only)')
    out.add_argument('--save-plot-dir', default=None,
                     help='also write the history plot here')
    out.add_argument('--log-file', default=None, help='default <save-dir>/train.log')
    out.add_argument('--eval-only', action='store_true',
                     help='report the test accuracy of --resume-from and stop')
    return p


def parse_args(argv=None):
    """Parse and check ``train_cifar.py`` arguments.

    Adds ``decay_epochs`` (list of int), ``zoo_name`` and ``act_type`` resolved from
    ``--model``.

    Raises
    ------
    UsageError
        Any invalid value, with one line saying which.
    """
    args = build_parser().parse_args(argv)
    if args.eval_only and not args.resume_from:
        raise UsageError('--eval-only needs --resume-from FILE (.params or .ckpt)')
    _fill_in(args, find_model_card(args.resume_from) if args.eval_only and
             os.path.isfile(args.resume_from) else None)
    require_positive(args, ('blocks', 'r', 'batch_size', 'num_epochs', 'save_period'))
    if not 0 <= args.act_layers <= 4:
        raise UsageError('--act-layers must be 0..4, got %d' % args.act_layers)
    if args.lr <= 0:
        raise UsageError('--lr must be > 0, got %s' % args.lr)
    if args.coarse_labels and args.dataset != 'cifar100':
        raise UsageError('--coarse-labels applies to --dataset cifar100 only')
    args.decay_epochs = decay_epochs(args)
    canonical_name(args.act_type)
    return args


# Architecture flags of the original script (attribute, get_model option, default), which
# --eval-only takes from the model card beside --resume-from unless given.
_TRAINER_DEFAULTS = (('r', 'r', 2), ('useReLU', 'use_relu', False),
                     ('useGlobal', 'use_global', False), ('act_layers', 'act_layers', 4),
                     ('attention', 'attention', None))


def _fill_in(args, card):
    """Complete the flags left at ``None``: from ``card`` (``--eval-only`` of a run that
    wrote one), else the original's defaults. Sets ``zoo_name`` and ``act_type``."""
    saved = card or {'options': {}}
    if card and args.model is None and args.blocks is None:
        args.zoo_name, default_act = card['model'], card['options'].get('act_type')
    else:
        args.model, args.blocks = args.model or 'atac', args.blocks or 3
        args.zoo_name, default_act = _model_name(args)
    options = fill_in({option: getattr(args, attr) for attr, option, _ in _TRAINER_DEFAULTS},
                      saved['options'],
                      {option: default for _, option, default in _TRAINER_DEFAULTS},
                      {option: '--' + attr.replace('_', '-') for attr, option, _
                       in _TRAINER_DEFAULTS})
    for attr, option, _ in _TRAINER_DEFAULTS:
        setattr(args, attr, options[option])
    args.act_type = given_or_saved('--act-type', args.act_type,
                                   card and card['options'].get('act_type'), default_act)
    args.dataset = given_or_saved('--dataset', args.dataset, card and card['dataset'],
                                  'cifar10')


def _model_name(args):
    name = args.model.lower()
    if name in ('atac', 'resnet'):
        return 'cifar_resnet%d_v2' % (6 * args.blocks + 2), 'ChaATAC' if name == 'atac' \
            else 'relu'
    if name.startswith('cifar_resnet') and name.endswith('_v2'):
        return name, 'ChaATAC'
    raise UsageError("--model must be 'atac', 'resnet' or a cifar_resnet*_v2 name, got %r"
                     % args.model)


def model_spec(args, classes):
    """Keyword arguments of ``get_model`` for parsed ``args`` and ``classes``."""
    return dict(classes=classes, act_type=args.act_type, r=args.r, use_relu=args.useReLU,
                use_global=args.useGlobal, act_layers=args.act_layers,
                attention=args.attention)


def _build_net(args, classes, ctx, logger):
    net = get_model(args.zoo_name, **model_spec(args, classes))
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


# The run state a checkpoint must hold, checked before anything acts on it. best_file
# is not among them: the run derives the name of its best file from its own pattern.
_STATE_CHECKS = {'epoch': count(), 'lr_decay_count': count(), 'best_val_acc': number(-1, 1),
                 'best_epoch': optional(count()), 'args': json_object}


def _fresh_state(args):
    """Run state before the first epoch.

    ``epoch`` counts finished epochs; ``best_val_acc`` starts below any accuracy so the
    first epoch always writes a best model.
    """
    return {'epoch': 0, 'lr_decay_count': 0, 'best_val_acc': -1.0, 'best_epoch': None,
            'best_file': None, 'args': {k: getattr(args, k, None) for k in _RUN_KEYS}}


def _warn_mismatch(saved, args, path, keys, logger):
    changed = ['%s %r -> %r' % (k, saved.get(k), getattr(args, k, None)) for k in keys
               if k in saved and saved[k] != getattr(args, k, None)]
    if changed:
        logger.warning('resuming %s with other settings than it was written with: %s',
                       path, '; '.join(changed))


def _restore(args, files, net, trainer, ctx, logger):
    """Load ``--resume-from`` (if given) into ``net`` and ``trainer``.

    A checkpoint restores weights, trainer states and the run state; a plain ``.params``
    file restores weights only, with a warning (the original's resume), and training
    starts at epoch 1.
    """
    state = _fresh_state(args)
    path = args.resume_from
    if not path:
        return state
    if not os.path.isfile(path):
        raise FileNotFoundError('--resume-from file not found: %s' % path)
    if not is_checkpoint(path) and not path.endswith('.ckpt'):
        load_parameters(net, path, ctx=ctx)
        if trainer is not None:
            logger.warning('%s is a .params file: loaded the weights only; the trainer '
                           'state and schedule start afresh at epoch 1', path)
        return state
    saved = load_checkpoint(path, net, trainer, ctx=ctx, checks=_STATE_CHECKS)
    if saved['best_epoch'] is not None and saved['best_epoch'] > saved['epoch']:
        raise CheckpointError('checkpoint %s is not usable: its best_epoch %d is after its '
                              'epoch %d' % (path, saved['best_epoch'], saved['epoch']))
    _warn_mismatch(saved['args'], args, path,
                   _RUN_KEYS if trainer is not None else _MODEL_KEYS, logger)
    # Only the checked fields: whatever else the file says (a best_file naming another
    # file, say) is never acted on.
    state.update({k: saved[k] for k in _STATE_CHECKS if k != 'args'})
    state['best_file'] = _best_file(files, state)
    logger.info('resumed %s after epoch %d (best test accuracy %.4f at epoch %s)', path,
                state['epoch'], state['best_val_acc'], state['best_epoch'])
    return state


def _best_file(files, state):
    """The best file of ``state``'s best epoch, by the run's own naming (``None`` before
    the first)."""
    if state['best_epoch'] is None:
        return None
    return files.best_stem(state['best_val_acc'], state['best_epoch']) + '.params'


def _save_best(files, net, accuracy, epoch, state, logger):
    """Write the new best model under its original name and as ``best.params``.

    The previous best file of this run is removed, so the folder names one best model.
    """
    path = RunFiles.save_pair(files.best_stem(accuracy, epoch), net)
    atomic_write(files.best, net.save_parameters)
    old = state.get('best_file')
    if old and old != path and os.path.dirname(old) == files.save_dir and os.path.exists(old):
        os.remove(old)
    state.update(best_val_acc=accuracy, best_epoch=epoch, best_file=path)
    logger.info('new best test accuracy %.4f: %s', accuracy, path)


def _plot(files, records, plot_dir):
    curves = {'train error': lambda r: 1 - r['train_acc'],
              'test error': lambda r: 1 - r['val_acc']}
    plot_history(records, files.history, curves, title=files.model_tag)
    if plot_dir:
        os.makedirs(plot_dir, exist_ok=True)
        plot_history(records, os.path.join(plot_dir, '%s_history.png' % files.model_tag),
                     curves, title=files.model_tag)


def _fit(args, net, data, ctx, files, logger):
    trainer = gluon.Trainer(net.collect_params(), 'nag',
                            {'learning_rate': args.lr, 'wd': args.wd, 'momentum': args.momentum})
    state = _restore(args, files, net, trainer, ctx, logger)
    # Every check has passed (a resumed file fits the network): only now is anything in
    # the folder written, so a refused run leaves the run it named as it was.
    open_log_file(logger)
    # The architecture travels with the weights: evaluate, export, visualize and
    # classify read it, so nobody has to restate --useReLU and friends.
    write_model_card(files.save_dir, args.zoo_name, model_spec(args, data.classes),
                     data.classes, args.dataset, preprocessing_for(args.dataset))
    metrics = MetricsLog(files.metrics, resume_epoch=state['epoch'])
    batch_size = fitting_batch_size(args.batch_size, len(data.train[0]), len(ctx),
                                    logger) * len(ctx)
    val_data = eval_loader(data, batch_size, args.num_workers)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for epoch in range(state['epoch'] + 1, args.num_epochs + 1):
        start = time.time()
        seed_everything(args.seed, epoch)
        rng = np.random.RandomState(epoch_seed(args.seed, epoch))
        lr = step_lr(epoch - 1, args.lr, args.lr_decay, args.decay_epochs)
        trainer.set_learning_rate(lr)
        loader = train_loader(data, batch_size, rng, args.num_workers)
        bar = progress(len(loader) * batch_size, 'epoch %d/%d' % (epoch, args.num_epochs),
                       enabled=not args.no_progress)
        try:
            stats = train_epoch(net, trainer, loader, ctx, loss_fn, batch_size, bar,
                                on_step=lambda i, _: pause_point('step', epoch))
        except NonFiniteStep as err:
            raise err.in_run(epoch, files.checkpoint, state['epoch']) from None
        bar.close()
        # The score logged, the best file and the checkpoint then hold the same statistics.
        average_running_stats(net)
        pause_point('evaluate', epoch)
        val_acc = evaluate(net, val_data, ctx)['top1_acc']
        state['epoch'] = epoch
        state['lr_decay_count'] = sum(1 for d in args.decay_epochs if d < epoch)
        if val_acc > state['best_val_acc']:
            _save_best(files, net, val_acc, epoch, state, logger)
        record = dict(epoch=epoch, train_acc=stats.accuracy, train_loss=stats.loss,
                      val_acc=val_acc, best_val_acc=state['best_val_acc'], lr=lr,
                      seconds=time.time() - start,
                      samples_per_sec=stats.samples / stats.seconds)
        metrics.append(record)
        logger.info('[Epoch %d/%d] train_acc=%.4f loss=%.4f val_acc=%.4f best=%.4f lr=%g '
                    '%.1fs %.0f img/s', epoch, args.num_epochs, stats.accuracy, stats.loss,
                    val_acc, state['best_val_acc'], lr, record['seconds'],
                    record['samples_per_sec'])
        _plot(files, metrics.records, args.save_plot_dir)
        if epoch % args.save_period == 0:
            RunFiles.save_pair(files.snapshot_stem(epoch), net)
        # After every epoch, so an interruption loses at most the epoch in progress.
        save_checkpoint(files.checkpoint, net, trainer, state)
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
    files = RunFiles(args.save_dir, 'cifar',
                     '%s_%s' % (args.zoo_name, canonical_name(args.act_type)), args.log_file)
    if args.eval_only:
        return _run(args, files)
    # Taken before anything is written, so a second run leaves the first one's files be.
    with RunLock(files.save_dir):
        if not _continues(args.resume_from):
            files.refuse_fresh_start('--resume-from', args.overwrite)
        return _run(args, files)


def _continues(path):
    """Whether ``--resume-from path`` continues a run (a checkpoint, as :func:`_restore`
    tells them apart) rather than starting one at epoch 1."""
    return bool(path) and (path.endswith('.ckpt') or
                           (os.path.isfile(path) and is_checkpoint(path)))


def _run(args, files):
    logger = setup_logging(args.log_file if args.eval_only else files.log,
                           defer=not args.eval_only)
    if args.deterministic:
        logger.info('deterministic: MXNet naive engine, one thread')
    ctx, notes = devices_with_notes(args.gpus)
    for note in notes:
        logger.warning('%s', note)
    if args.drop_rate:
        logger.warning('--drop-rate %g is ignored: the original applied it to wide ResNets '
                       'only', args.drop_rate)
    data = get_dataset(args.dataset, args.data_dir, args.coarse_labels, logger)
    _log_data(args, data, logger)
    net = _build_net(args, data.classes, ctx, logger)
    if not args.eval_only:
        return _fit(args, net, data, ctx, files, logger)
    _restore(args, files, net, None, ctx, logger)
    val_acc = evaluate(net, eval_loader(data, args.batch_size * len(ctx), args.num_workers),
                       ctx)['top1_acc']
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
    args = parse_args(argv)
    if args.deterministic:
        make_deterministic(restart=argv is None)
    return run(args)
