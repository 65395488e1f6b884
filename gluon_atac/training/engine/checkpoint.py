"""Resumable checkpoints (net + trainer + run state) written atomically."""
import os
import pickle
import tempfile

from ...errors import CheckpointError
from ...model_zoo import load_parameters

__all__ = ['atomic_write', 'save_checkpoint', 'load_checkpoint']

_FORMAT = 'gluon_atac.checkpoint/1'


def atomic_write(path, write):
    """Call ``write(tmp_path)`` then rename onto ``path``.

    A crash while writing leaves the previous ``path`` intact: the rename is atomic on
    POSIX file systems, and the temporary file lives in the same directory.

    Parameters
    ----------
    path : str
    write : callable
        Writes the complete file at the path it is given.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=directory)
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
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _read_bytes_of(save):
    with tempfile.TemporaryDirectory() as tmpdir:
        target = os.path.join(tmpdir, 'blob')
        save(target)
        with open(target, 'rb') as handle:
            return handle.read()


def save_checkpoint(path, net, trainer, state):
    """Write ``net``'s parameters, ``trainer``'s states and ``state`` into one file.

    Parameters
    ----------
    path : str
    net : mxnet.gluon.Block
    trainer : mxnet.gluon.Trainer or None
    state : dict
        Picklable run state: epoch, schedule position, best score, arguments ...
    """
    payload = {
        'format': _FORMAT,
        'state': dict(state),
        'params': _read_bytes_of(net.save_parameters),
        'trainer': _read_bytes_of(trainer.save_states) if trainer is not None else None,
    }

    def write(tmp):
        with open(tmp, 'wb') as handle:
            pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return atomic_write(path, write)


def _load_bytes_into(load, blob, origin):
    with tempfile.TemporaryDirectory() as tmpdir:
        source = os.path.join(tmpdir, 'blob')
        with open(source, 'wb') as handle:
            handle.write(blob)
        try:
            load(source)
        except ValueError as err:
            # Name the checkpoint the user gave, not the temporary copy.
            raise type(err)(str(err).replace(source, origin)) from None


def load_checkpoint(path, net, trainer=None, ctx=None):
    """Restore a :func:`save_checkpoint` file into ``net`` (and ``trainer``).

    Parameters
    ----------
    path : str
    net : mxnet.gluon.Block
    trainer : mxnet.gluon.Trainer, optional
    ctx : Context or list of Context, optional

    Returns
    -------
    dict
        The saved run state.

    Raises
    ------
    CheckpointError
        If the file is missing, truncated or of another format.
    """
    if not os.path.isfile(path):
        raise CheckpointError('checkpoint not found: %s' % path)
    try:
        with open(path, 'rb') as handle:
            payload = pickle.load(handle)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise CheckpointError('checkpoint %s is truncated or corrupt (%s)' % (path, err)) \
            from None
    if not isinstance(payload, dict) or payload.get('format') != _FORMAT:
        raise CheckpointError('%s is not a gluon_atac checkpoint' % path)
    _load_bytes_into(lambda f: load_parameters(net, f, ctx=ctx), payload['params'], path)
    if trainer is not None and payload['trainer'] is not None:
        _load_bytes_into(trainer.load_states, payload['trainer'], path)
    return payload['state']
