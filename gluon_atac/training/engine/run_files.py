"""The files one training run writes into its ``--save-dir``."""
import os

from ...errors import UsageError
from .checkpoint import PARTIAL_SUFFIX, atomic_write

__all__ = ['RunFiles', 'RunLock']


class RunFiles(object):
    """Paths of one run's outputs, and the writes of parameter (and trainer) files.

    Parameters
    ----------
    save_dir : str
    dataset_tag : str
        ``'cifar'`` or ``'imagenet'``, as in the original's file names.
    model_tag : str
        Model part of the original's file names, e.g. ``ResNet50_v1b_ChaATAC``.
    log_file : str, optional
        Default ``<save_dir>/train.log``.

    Attributes
    ----------
    metrics, checkpoint, best, history, log : str
        ``metrics.jsonl``, ``checkpoint.ckpt``, ``best.params``, ``history.png`` and the
        log file.
    """

    def __init__(self, save_dir, dataset_tag, model_tag, log_file=None):
        self.save_dir = os.path.abspath(save_dir)
        self.dataset_tag, self.model_tag = dataset_tag, model_tag
        self.metrics = self.path('metrics.jsonl')
        self.checkpoint = self.path('checkpoint.ckpt')
        self.best = self.path('best.params')
        self.history = self.path('history.png')
        self.log = log_file or self.path('train.log')

    def path(self, name):
        """``name`` inside the save directory."""
        return os.path.join(self.save_dir, name)

    def best_stem(self, score, epoch):
        """The original's best-model stem, ``%.4f-<dataset>-<model>-%d-best``.

        ``score`` and ``epoch`` are written as the original did: CIFAR's test accuracy
        with the 1-based epoch, ImageNet's top-1 error with the 0-based epoch index.
        """
        return self.path('%.4f-%s-%s-%d-best' % (score, self.dataset_tag, self.model_tag,
                                                 epoch))

    def snapshot_stem(self, epoch_index):
        """The original's periodic snapshot stem, ``<dataset>-<model>-<epoch index>``."""
        return self.path('%s-%s-%d' % (self.dataset_tag, self.model_tag, epoch_index))

    @staticmethod
    def save_pair(stem, net, trainer=None):
        """Write ``stem.params`` and (unless ``trainer`` is None) ``stem.states``, atomically.

        Returns
        -------
        str
            The ``.params`` path.
        """
        atomic_write(stem + '.params', net.save_parameters)
        if trainer is not None:
            atomic_write(stem + '.states', trainer.save_states)
        return stem + '.params'


class RunLock(object):
    """One run per ``--save-dir``: a lock file holding the PID of the run that owns it.

    Taken with ``with RunLock(save_dir):``; released (removed) when the block ends. A lock
    whose process is gone (killed, crashed) is taken over, so a resumed run needs no
    clean-up: the temporary files of writes a killed run left unfinished are removed.

    Parameters
    ----------
    save_dir : str

    Raises
    ------
    UsageError
        On entering, if a live process holds the lock; the message names its PID.
    """

    NAME = '.run.lock'

    def __init__(self, save_dir):
        self.path = os.path.join(os.path.abspath(save_dir), self.NAME)

    def _holder(self):
        try:
            with open(self.path) as handle:
                pid = int(handle.read().strip() or 0)
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            # Another user's live process.
            return pid
        return pid if pid > 0 else None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and holder != os.getpid():
                    raise UsageError('%s is in use by the run of process %d (lock %s)'
                                     % (os.path.dirname(self.path), holder, self.path))
                # The holder is dead (or is us): take the lock over.
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass  # another starting run took it over first; try again
                continue
            with os.fdopen(fd, 'w') as handle:
                handle.write('%d\n' % os.getpid())
            self._remove_partial_writes()
            return self

    def _remove_partial_writes(self):
        # Only the lock's holder writes here, so every unfinished write is a dead run's.
        directory = os.path.dirname(self.path)
        for name in os.listdir(directory):
            if name.startswith('.') and name.endswith(PARTIAL_SUFFIX):
                os.remove(os.path.join(directory, name))

    def __exit__(self, *exc):
        if self._holder() == os.getpid():
            os.remove(self.path)
