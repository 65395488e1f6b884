"""The files one training run writes into its ``--save-dir``."""
import errno
import fcntl
import os
import stat

from ...errors import UsageError
from ...utils.model_card import CARD_NAME
from .checkpoint import PARTIAL_SUFFIX, atomic_write

__all__ = ['RunFiles', 'RunLock', 'RESULT_FILES']

# What a run leaves in its folder that a fresh run there would replace.
RESULT_FILES = ('metrics.jsonl', 'checkpoint.ckpt', 'best.params', CARD_NAME)


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

    def refuse_fresh_start(self, resume_flag, overwrite=False):
        """Refuse to start a run afresh over the results another run left here.

        A fresh run rewrites ``metrics.jsonl`` before its first epoch and then replaces the
        checkpoint, ``best.params`` and ``model.json``; re-running a finished run's command
        without its resume flag would lose them without a word.

        Parameters
        ----------
        resume_flag : str
            The trainer's flag that continues a checkpoint, named in the message.
        overwrite : bool, default False
            ``--overwrite`` was given: the files are replaced as the run goes.

        Raises
        ------
        UsageError
            One line naming the files found and the three ways on.
        """
        found = [name for name in RESULT_FILES if os.path.lexists(self.path(name))]
        if not found or overwrite:
            return
        ways = 'choose another --save-dir, or pass --overwrite to replace them'
        if os.path.lexists(self.checkpoint):
            ways = 'resume it (%s %s), %s' % (resume_flag, self.checkpoint, ways)
        raise UsageError('%s holds the files of another run (%s): %s'
                         % (self.save_dir, ', '.join(found), ways))

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
    """One run per ``--save-dir``: an exclusive ``flock`` on a lock file holding the PID of
    the run that owns it.

    Taken with ``with RunLock(save_dir):``; released (removed) when the block ends. The
    kernel drops the ``flock`` of a process that is gone (killed, crashed), so its lock is
    taken over and a resumed run needs no clean-up: the temporary files of writes a
    killed run left unfinished are removed. Taking the lock never waits: the file is
    opened without following links and without blocking, and anything but a regular file
    (a FIFO, a device, a link) is refused.

    Parameters
    ----------
    save_dir : str

    Raises
    ------
    UsageError
        On entering, if another process holds the lock (the message names its PID) or the
        lock's name is taken by something that is not a regular file.
    """

    NAME = '.run.lock'
    # O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever.
    _FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

    def __init__(self, save_dir):
        self.path = os.path.join(os.path.abspath(save_dir), self.NAME)
        self._fd = None

    def _open(self):
        try:
            fd = os.open(self.path, self._FLAGS, 0o644)
        except OSError as err:
            # ELOOP: the name is a symbolic link, which O_NOFOLLOW refuses.
            raise UsageError('cannot take the lock %s: %s' % (
                self.path, 'it is a symbolic link' if err.errno == errno.ELOOP
                else err.strerror)) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UsageError('cannot take the lock %s: it is not a regular file (remove it)'
                             % self.path)
        return fd

    def _refuse(self, fd):
        # The holder writes its PID right after taking the lock; a reader in between sees
        # an empty file and names no PID rather than a wrong one.
        text = os.pread(fd, 32, 0).decode('ascii', 'replace').strip()
        os.close(fd)
        holder = 'process %s' % text if text.isdigit() else 'another process'
        raise UsageError('%s is in use by the run of %s (lock %s)'
                         % (os.path.dirname(self.path), holder, self.path))

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._refuse(fd)
            # A holder that was leaving removed the file between our open and our flock:
            # the lock we hold is on a name nobody else will open, so open it again.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, b'%d\n' % os.getpid(), 0)
        self._fd = fd
        self._remove_partial_writes()
        return self

    def _remove_partial_writes(self):
        # Only the lock's holder writes here, so every unfinished write is a dead run's.
        directory = os.path.dirname(self.path)
        for name in os.listdir(directory):
            if name.startswith('.') and name.endswith(PARTIAL_SUFFIX):
                os.remove(os.path.join(directory, name))

    def __exit__(self, *exc):
        # Removed while still held, so a run that opens the name afterwards creates a new
        # file, and one that opened the old file finds it gone (see __enter__).
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None
