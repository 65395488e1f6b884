"""Resumable checkpoints (net + trainer + run state) written atomically.

A checkpoint is an uncompressed zip archive of three members that cannot execute code
when read: ``params.nd`` (the network's parameters) and ``trainer.nd`` (the optimizer
states, keyed by parameter name) as MXNet NDArray files, and ``state.json`` (run state,
update counts, the layout of the optimizer states). Loading never unpickles.
"""
import errno
import json
import os
import tempfile
import time
import zipfile

import mxnet as mx

from ...errors import CheckpointError, WriteError
from ...model_zoo import load_parameters

__all__ = ['atomic_write', 'save_checkpoint', 'load_checkpoint', 'is_checkpoint',
           'pause_point', 'PARTIAL_SUFFIX']

_FORMAT = 'gluon_atac.checkpoint/2'
_MEMBERS = ('state.json', 'params.nd', 'trainer.nd')
# Test-only: "<stage>:<epoch>:<marker file>" makes the run create the marker and wait at
# that point, so a test can kill it there (mid-epoch, evaluating, writing a checkpoint).
_PAUSE_ENV = 'GLUON_ATAC_TEST_PAUSE'
# Ends the name of a file atomic_write has not finished: a process killed inside the
# write leaves it behind, for the next run in the folder to remove.
PARTIAL_SUFFIX = '.partial'


def pause_point(stage, epoch):
    """Wait forever here if the test-only pause variable names ``stage`` and ``epoch``."""
    spec = os.environ.get(_PAUSE_ENV, '').split(':', 2)
    if len(spec) == 3 and spec[0] == stage and spec[1] == str(epoch):
        with open(spec[2], 'w') as handle:
            handle.write(str(os.getpid()))
        while True:
            time.sleep(1)


def atomic_write(path, write):
    """Call ``write(tmp_path)`` then rename onto ``path``.

    A crash or a failed write (disk full, I/O error) leaves the previous ``path`` intact:
    the rename is atomic on POSIX file systems, the temporary file lives in the same
    directory and is removed when the write fails (a killed process leaves it, named
    ``.<name>.<random>.partial``, for :class:`~.run_files.RunLock` to remove).

    Parameters
    ----------
    path : str
    write : callable
        Writes the complete file at the path it is given.

    Raises
    ------
    WriteError
        The file system refused the write; one line naming ``path`` and the reason.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.',
                               suffix=PARTIAL_SUFFIX, dir=directory)
    os.close(fd)
    # mkstemp creates the file private (0600); give it the mode open() would have given.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        write(tmp)
        with open(tmp, 'rb') as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        reason = err.strerror or errno.errorcode.get(err.errno, str(err))
        raise WriteError('cannot write %s: %s (the previous file is kept)'
                         % (path, reason)) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _updaters(trainer):
    """The updaters holding ``trainer``'s optimizer states (one per device, or the
    kvstore's one when updates run on the kvstore)."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    # As Trainer.load_states does: the kvstore takes the current (loaded) values now.
    if trainer._params_to_init:
        trainer._init_params()
    if trainer._update_on_kvstore:
        return [trainer._kvstore._updater]
    return trainer._updaters


def _trainer_names(net, trainer):
    """Trainer index -> structural parameter name (as in ``.params`` files), which does
    not depend on how many networks the process built before."""
    index = trainer._param2idx
    return {index[p.name]: name for name, p in net._collect_params_with_prefix().items()
            if p.name in index}


def _flatten(state, key, arrays):
    """JSON layout of one optimizer state; its arrays go into ``arrays`` as CPU copies."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return [_flatten(s, '%s.%d' % (key, i), arrays) for i, s in enumerate(state)]
    arrays[key] = state.copyto(mx.cpu())
    return key


def _unflatten(layout, arrays):
    if layout is None:
        return None
    if isinstance(layout, list):
        return tuple(_unflatten(item, arrays) for item in layout)
    return arrays[layout]


def _trainer_payload(net, trainer):
    names = _trainer_names(net, trainer)
    updater = _updaters(trainer)[0]
    arrays, layout = {}, {}
    for index, state in updater.states.items():
        layout[names[int(index)]] = _flatten(state, names[int(index)], arrays)
    counts = updater.optimizer._index_update_count
    return arrays, {'num_update': updater.optimizer.num_update,
                    'update_counts': {names[int(i)]: n for i, n in counts.items()},
                    'layout': layout}


def _restore_trainer(net, trainer, meta, arrays):
    """Put the saved states into every updater; each moves them onto its weight's device
    at the next update, so any number of devices resumes any other."""
    index = {name: i for i, name in _trainer_names(net, trainer).items()}
    unknown = sorted(set(meta['layout']) - set(index))
    if unknown:
        raise CheckpointError('the checkpoint has optimizer states of parameters this '
                              'network lacks: %s' % ', '.join(unknown[:3]))
    counts = {index[n]: c for n, c in meta['update_counts'].items()}
    # The optimizer keeps one count table per device id and switches at every update.
    device_ids = {c.device_id for c in trainer._contexts} | {0}
    for updater in _updaters(trainer):
        updater.states = {index[n]: _unflatten(l, arrays) for n, l in meta['layout'].items()}
        updater.states_synced = {i: False for i in updater.states}
        optimizer = updater.optimizer
        optimizer.num_update = meta['num_update']
        optimizer._all_index_update_counts = {d: dict(counts) for d in device_ids}
        optimizer._index_update_count = optimizer._all_index_update_counts[0]
    trainer._optimizer.num_update = meta['num_update']


def save_checkpoint(path, net, trainer, state):
    """Write ``net``'s parameters, ``trainer``'s states and ``state`` into one archive.

    Parameters
    ----------
    path : str
    net : mxnet.gluon.Block
    trainer : mxnet.gluon.Trainer or None
    state : dict
        JSON-serializable run state: epoch, schedule position, best score, arguments ...
        (other values are written as their ``str``).
    """
    arrays, meta = _trainer_payload(net, trainer) if trainer is not None else ({}, None)
    header = json.dumps({'format': _FORMAT, 'state': dict(state), 'trainer': meta},
                        default=str, sort_keys=True)

    def write(tmp):
        with tempfile.TemporaryDirectory() as tmpdir:
            params, states = os.path.join(tmpdir, 'params'), os.path.join(tmpdir, 'states')
            net.save_parameters(params)
            mx.nd.save(states, arrays)
            with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_STORED) as archive:
                archive.writestr('state.json', header)
                archive.write(params, 'params.nd')
                archive.write(states, 'trainer.nd')
        pause_point('checkpoint', state.get('epoch'))
    return atomic_write(path, write)


def is_checkpoint(path):
    """Whether ``path`` is a zip archive (a checkpoint rather than a ``.params`` file)."""
    return zipfile.is_zipfile(path)


def load_checkpoint(path, net, trainer=None, ctx=None):
    """Restore a :func:`save_checkpoint` archive into ``net`` (and ``trainer``).

    Parameters
    ----------
    path : str
    net : mxnet.gluon.Block
    trainer : mxnet.gluon.Trainer, optional
        Its states are restored onto its own devices, however many the saving run had.
    ctx : Context or list of Context, optional

    Returns
    -------
    dict
        The saved run state.

    Raises
    ------
    CheckpointError
        If the file is missing, truncated, of another format, or a pickle (which is never
        loaded: it could run code).
    """
    if not os.path.isfile(path):
        raise CheckpointError('checkpoint not found: %s' % path)
    if not zipfile.is_zipfile(path):
        with open(path, 'rb') as handle:
            start = handle.read(2)
        if start == b'PK':
            raise CheckpointError('checkpoint %s is truncated or corrupt' % path)
        raise CheckpointError('%s is not a gluon_atac checkpoint%s' % (
            path, ' but a pickle, which is never loaded (it could run code)'
            if start[:1] == b'\x80' else ''))
    with tempfile.TemporaryDirectory() as tmpdir:
        try:
            with zipfile.ZipFile(path) as archive:
                if sorted(archive.namelist()) != sorted(_MEMBERS):
                    raise CheckpointError('%s is not a gluon_atac checkpoint (members %s)'
                                          % (path, ', '.join(archive.namelist())))
                header = json.loads(archive.read('state.json').decode('utf-8'))
                for name in ('params.nd', 'trainer.nd'):
                    archive.extract(name, tmpdir)
            arrays = mx.nd.load(os.path.join(tmpdir, 'trainer.nd'))
        except (zipfile.BadZipFile, ValueError, KeyError, mx.base.MXNetError) as err:
            raise CheckpointError('checkpoint %s is truncated or corrupt (%s)'
                                  % (path, str(err).strip().splitlines()[-1])) from None
        if not isinstance(header, dict) or header.get('format') != _FORMAT:
            raise CheckpointError('%s is not a gluon_atac checkpoint' % path)
        try:
            load_parameters(net, os.path.join(tmpdir, 'params.nd'), ctx=ctx)
        except ValueError as err:
            # Name the checkpoint the user gave, not the temporary copy.
            raise type(err)(str(err).replace(os.path.join(tmpdir, 'params.nd'), path)) \
                from None
    if trainer is not None and header['trainer'] is not None:
        _restore_trainer(net, trainer, header['trainer'], arrays)
    return header['state']
