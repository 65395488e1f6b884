"""Resumable checkpoints (net + trainer + run state) written atomically.

A checkpoint is an uncompressed zip archive of three members that cannot execute code
when read: ``params.nd`` (the network's parameters) and ``trainer.nd`` (the optimizer
states, keyed by parameter name) as MXNet NDArray files, and ``state.json`` (run state,
update counts, the layout of the optimizer states). Loading never unpickles, refuses
compressed or oversized members before reading them, and checks every field of
``state.json`` by type and range before anything acts on it (:func:`check_state` for the
recipes' own fields).
"""
import errno
import json
import math
import os
import tempfile
import time
import zipfile

import mxnet as mx

from ...errors import CheckpointError, WriteError, one_line
from ...model_zoo import load_parameters
from ...utils.fields import shown, whole_number

__all__ = ['atomic_write', 'save_checkpoint', 'load_checkpoint', 'is_checkpoint',
           'pause_point', 'PARTIAL_SUFFIX', 'check_state', 'count', 'number', 'optional',
           'json_object',
           'MAX_EPOCHS']

_FORMAT = 'gluon_atac.checkpoint/2'
_MEMBERS = ('state.json', 'params.nd', 'trainer.nd')
# state.json is a few kB (the optimizer layout of ResNet-152 about 100 kB); anything near
# this bound is not one of ours, and is refused before it is read.
_MAX_STATE_BYTES = 16 << 20
# Upper bounds of the run's counters: far beyond any real run, small enough that no
# arithmetic on them overflows or takes long.
MAX_EPOCHS = 10 ** 6
_MAX_UPDATES = 10 ** 15
# An optimizer state is an array or a (nested) tuple of them: NAG's is one level deep.
_MAX_LAYOUT_DEPTH = 4
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
    unknown = sorted((set(meta['layout']) | set(meta['update_counts'])) - set(index))
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


def count(maximum=MAX_EPOCHS):
    """A check of :func:`check_state`: a whole number in ``0..maximum`` (not a bool, not a
    string, not a float)."""
    return whole_number(0, maximum)


def number(low, high):
    """A check of :func:`check_state`: a finite number in ``low..high``."""
    def check(value):
        if type(value) not in (int, float) or not math.isfinite(value) or \
                not low <= value <= high:
            return 'a finite number in %g..%g' % (low, high)
        return None
    return check


def json_object(value):
    """A check of :func:`check_state`: a JSON object (e.g. the saved arguments)."""
    return None if isinstance(value, dict) else 'an object'


def optional(check):
    """A check of :func:`check_state` that also accepts ``None``."""
    def either(value):
        reason = None if value is None else check(value)
        return reason and reason + ' or null'
    return either


def check_state(state, checks, path):
    """Refuse a run state whose fields are missing or of the wrong type or range.

    Parameters
    ----------
    state : dict
        As :func:`load_checkpoint` returns it.
    checks : dict
        Field name -> check (:func:`count`, :func:`number`, :func:`optional` or any
        function returning ``None`` for a good value, else what was expected).
    path : str
        The checkpoint, named in the error.

    Returns
    -------
    dict
        ``state``.

    Raises
    ------
    CheckpointError
        One line naming the checkpoint and the first bad field (or all missing ones).
    """
    missing = [name for name in checks if name not in state]
    if missing:
        raise CheckpointError('checkpoint %s lacks the run state field(s) %s'
                              % (path, ', '.join(missing)))
    for name, check in checks.items():
        reason = check(state[name])
        if reason:
            raise CheckpointError('checkpoint %s is not usable: its %s is %s, not %s'
                                  % (path, name, shown(state[name]), reason))
    return state


class _NotANumber(ValueError):
    """NaN or Infinity in state.json, which JSON does not define and no field takes."""


def _refuse_constant(name):
    raise _NotANumber(name)


def _check_members(path, archive):
    """Refuse members other than ours, compressed or encrypted ones, and sizes the file
    cannot hold, before any is read (a compressed member can inflate to gigabytes)."""
    infos = archive.infolist()
    names = sorted(info.filename for info in infos)
    if names != sorted(_MEMBERS):
        shown = ', '.join(names[:5]) + (' (+%d more)' % (len(names) - 5) if len(names) > 5
                                        else '')
        raise CheckpointError('%s is not a gluon_atac checkpoint (members %s)'
                              % (path, shown))
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            raise CheckpointError('checkpoint %s is not usable: member %s is %s (method %d); '
                                  'gluon_atac checkpoints store members uncompressed'
                                  % (path, info.filename, 'encrypted' if info.flag_bits & 0x1
                                     else 'compressed', info.compress_type))
        total += info.file_size
        if info.file_size != info.compress_size or total > os.path.getsize(path):
            raise CheckpointError('checkpoint %s is truncated or corrupt (member %s declares '
                                  '%d bytes)' % (path, info.filename, info.file_size))
    if archive.getinfo('state.json').file_size > _MAX_STATE_BYTES:
        raise CheckpointError('checkpoint %s is not usable: its state.json is larger than '
                              '%d bytes' % (path, _MAX_STATE_BYTES))


def _layout_arrays(layout, depth=0):
    """The array keys of one optimizer state layout; ``None`` if it is malformed."""
    if layout is None:
        return []
    if isinstance(layout, str):
        return [layout]
    if isinstance(layout, list) and depth < _MAX_LAYOUT_DEPTH:
        keys = []
        for item in layout:
            inner = _layout_arrays(item, depth + 1)
            if inner is None:
                return None
            keys.extend(inner)
        return keys
    return None


def _check_trainer(path, meta, arrays):
    """Refuse a trainer section whose counts or layout the restore would trip over."""
    def bad(what):
        return CheckpointError('checkpoint %s is not usable: its trainer %s' % (path, what))
    if meta is None:
        return
    if not isinstance(meta, dict) or any(k not in meta for k in
                                         ('num_update', 'update_counts', 'layout')):
        raise bad('section lacks num_update, update_counts or layout')
    reason = count(_MAX_UPDATES)(meta['num_update'])
    if reason:
        raise bad('num_update is %s, not %s' % (shown(meta['num_update']), reason))
    counts = meta['update_counts']
    if not isinstance(counts, dict) or any(count(_MAX_UPDATES)(c) for c in counts.values()):
        raise bad('update_counts are not whole numbers in 0..%d' % _MAX_UPDATES)
    if not isinstance(meta['layout'], dict) or not isinstance(arrays, dict):
        raise bad('layout is malformed')
    for name, layout in meta['layout'].items():
        keys = _layout_arrays(layout)
        if keys is None or any(key not in arrays for key in keys):
            raise bad('layout of %s is malformed or names missing arrays' % name[:60])


def is_checkpoint(path):
    """Whether ``path`` is a zip archive (a checkpoint rather than a ``.params`` file)."""
    return zipfile.is_zipfile(path)


def load_checkpoint(path, net, trainer=None, ctx=None, checks=None):
    """Restore a :func:`save_checkpoint` archive into ``net`` (and ``trainer``).

    Parameters
    ----------
    path : str
    net : mxnet.gluon.Block
    trainer : mxnet.gluon.Trainer, optional
        Its states are restored onto its own devices, however many the saving run had.
    ctx : Context or list of Context, optional
    checks : dict, optional
        The run state fields the caller needs, checked by :func:`check_state` before
        anything is loaded.

    Returns
    -------
    dict
        The saved run state.

    Raises
    ------
    CheckpointError
        If the file is missing, truncated, of another format, a pickle (which is never
        loaded: it could run code), has compressed, encrypted or oversized members, or
        its ``state.json`` is not JSON of the expected shape (the recipes check their own
        run state fields with :func:`check_state`).
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
                _check_members(path, archive)
                header = json.loads(archive.read('state.json').decode('utf-8'),
                                    parse_constant=_refuse_constant)
                for name in ('params.nd', 'trainer.nd'):
                    archive.extract(name, tmpdir)
            # An empty file (no optimizer states yet) loads as a list.
            arrays = mx.nd.load(os.path.join(tmpdir, 'trainer.nd')) or {}
        except CheckpointError:
            raise
        except RecursionError:
            raise CheckpointError('checkpoint %s is not usable: its state.json nests too '
                                  'deep' % path) from None
        except _NotANumber as err:
            raise CheckpointError('checkpoint %s is not usable: its state.json holds %s, '
                                  'which no field takes' % (path, err)) from None
        except (zipfile.BadZipFile, ValueError, KeyError, mx.base.MXNetError) as err:
            raise CheckpointError('checkpoint %s is truncated or corrupt (%s)'
                                  % (path, one_line(err))) from None
        if not isinstance(header, dict) or header.get('format') != _FORMAT:
            raise CheckpointError('%s is not a gluon_atac checkpoint' % path)
        if not isinstance(header.get('state'), dict):
            raise CheckpointError('checkpoint %s is not usable: it holds no run state' % path)
        check_state(header['state'], checks or {}, path)
        _check_trainer(path, header.get('trainer'), arrays)
        try:
            load_parameters(net, os.path.join(tmpdir, 'params.nd'), ctx=ctx)
        except ValueError as err:
            # Name the checkpoint the user gave, not the temporary copy.
            raise type(err)(str(err).replace(os.path.join(tmpdir, 'params.nd'), path)) \
                from None
    if trainer is not None and header.get('trainer') is not None:
        _restore_trainer(net, trainer, header['trainer'], arrays)
    return header['state']
