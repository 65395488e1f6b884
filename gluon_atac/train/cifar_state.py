"""Files of a CIFAR run, its resumable state, and the best-model bookkeeping."""
import os

from ..training import atomic_write, load_checkpoint, save_checkpoint
from ..utils.params import load_parameters

__all__ = ['RunFiles', 'fresh_state', 'restore', 'save_best', 'save_state']

# Arguments that change what a resumed run computes; a mismatch is worth a warning (when
# only evaluating, of the model and data ones).
_MODEL_KEYS = ('dataset', 'coarse_labels', 'zoo_name', 'act_type', 'r', 'useReLU',
               'useGlobal', 'act_layers', 'attention')
_RUN_KEYS = _MODEL_KEYS + ('seed', 'batch_size', 'gpus', 'lr', 'lr_decay', 'decay_epochs',
                           'wd', 'momentum')
# First bytes of a pickle (protocol >= 2): checkpoints; .params files start otherwise.
_PICKLE_MAGIC = b'\x80'


class RunFiles(object):
    """Paths of one run's outputs in ``save_dir``.

    Parameters
    ----------
    save_dir : str
    model_name : str
        Appears in the best-model file name, ``%.4f-cifar-<model_name>-%d-best.params``.

    Attributes
    ----------
    metrics, checkpoint, best, history, log : str
        ``metrics.jsonl``, ``checkpoint.ckpt``, ``best.params``, ``history.png``,
        ``train.log``.
    """

    def __init__(self, save_dir, model_name):
        self.save_dir = os.path.abspath(save_dir)
        self.model_name = model_name
        join = lambda name: os.path.join(self.save_dir, name)
        self.metrics = join('metrics.jsonl')
        self.checkpoint = join('checkpoint.ckpt')
        self.best = join('best.params')
        self.history = join('history.png')
        self.log = join('train.log')

    def best_named(self, accuracy, epoch):
        """The original's best-model name for ``accuracy`` at (1-based) ``epoch``."""
        return os.path.join(self.save_dir, '%.4f-cifar-%s-%d-best.params'
                            % (accuracy, self.model_name, epoch))


def fresh_state(args):
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


def restore(args, net, trainer, ctx, logger):
    """Load ``args.resume_from`` (if given) into ``net`` and ``trainer``.

    A checkpoint restores weights, trainer states and the run state; a plain ``.params``
    file restores weights only, with a warning (the original's resume), and training
    starts at epoch 1.

    Returns
    -------
    dict
        The run state to continue from (:func:`fresh_state` without a checkpoint).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, a file that is neither, or weights of another architecture.
    """
    state = fresh_state(args)
    path = args.resume_from
    if not path:
        return state
    if not os.path.isfile(path):
        raise FileNotFoundError('--resume-from file not found: %s' % path)
    with open(path, 'rb') as handle:
        is_checkpoint = handle.read(1) == _PICKLE_MAGIC
    if not is_checkpoint:
        load_parameters(net, path, ctx=ctx)
        if trainer is not None:
            logger.warning('%s is a .params file: loaded the weights only; the trainer '
                           'state and schedule start afresh at epoch 1', path)
        return state
    saved = load_checkpoint(path, net, trainer, ctx=ctx)
    _warn_mismatch(saved.get('args', {}), args, path,
                   _RUN_KEYS if trainer is not None else _MODEL_KEYS, logger)
    state.update({k: v for k, v in saved.items() if k != 'args'})
    logger.info('resumed %s after epoch %d (best test accuracy %.4f at epoch %s)', path,
                state['epoch'], state['best_val_acc'], state['best_epoch'])
    return state


def save_best(files, net, accuracy, epoch, state, logger):
    """Write the new best model under its original name and as ``best.params``.

    The previous best file of this run is removed, so the folder names one best model.
    """
    path = files.best_named(accuracy, epoch)
    atomic_write(path, net.save_parameters)
    atomic_write(files.best, net.save_parameters)
    old = state.get('best_file')
    if old and old != path and os.path.dirname(old) == files.save_dir and os.path.exists(old):
        os.remove(old)
    state.update(best_val_acc=accuracy, best_epoch=epoch, best_file=path)
    logger.info('new best test accuracy %.4f: %s', accuracy, path)


def save_state(files, net, trainer, state):
    """Atomically write ``checkpoint.ckpt``: weights, trainer states and ``state``."""
    save_checkpoint(files.checkpoint, net, trainer, state)
