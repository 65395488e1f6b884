"""The files one training run writes into its ``--save-dir``."""
import os

from .checkpoint import atomic_write

__all__ = ['RunFiles']


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
