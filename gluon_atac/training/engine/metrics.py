"""Per-epoch metrics as JSON lines, and the training-history plot."""
import json
import os

from ...errors import CheckpointError
from .checkpoint import atomic_write, count

__all__ = ['MetricsLog', 'read_metrics', 'plot_history']


class MetricsLog(object):
    """Append-only ``metrics.jsonl``: one JSON object per epoch.

    Parameters
    ----------
    path : str
    resume_epoch : int, optional
        When resuming after epoch ``k``, records of later epochs (written by the run that
        was interrupted) are dropped so the file again reads epoch 1..k.
    """

    def __init__(self, path, resume_epoch=None):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.records = read_metrics(path) if resume_epoch is not None else []
        self.records = [r for r in self.records if r['epoch'] <= (resume_epoch or 0)]
        self._write()

    def _write(self):
        # Rewritten whole and renamed (the file is one short line per epoch), so a failed
        # write never leaves half a record.
        def write(tmp):
            with open(tmp, 'w') as handle:
                handle.writelines(json.dumps(record) + '\n' for record in self.records)
        atomic_write(self.path, write)

    def append(self, record):
        """Write one epoch's record to disk.

        Raises
        ------
        WriteError
            The file system refused the write; the file keeps the earlier epochs.
        """
        self.records.append(dict(record))
        try:
            self._write()
        except Exception:
            self.records.pop()
            raise


def read_metrics(path):
    """Records of a ``metrics.jsonl`` file (an empty list if it does not exist).

    Raises
    ------
    CheckpointError
        A line is not a JSON object with a whole-number ``epoch``; one line naming the
        file and the line.
    """
    if not os.path.exists(path):
        return []
    records = []
    with open(path, 'rb') as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            if not isinstance(record, dict) or count()(record.get('epoch')):
                raise CheckpointError('%s line %d is damaged (not a JSON record with an '
                                      'epoch number): repair or remove it' % (path, number))
            records.append(record)
    return records


def plot_history(records, path, curves, title='', ylabel='error'):
    """Draw metric curves against the epoch into a PNG.

    Parameters
    ----------
    records : list of dict
        Metric records with an ``epoch`` key.
    path : str
        PNG to write.
    curves : dict
        Label -> function of a record giving the plotted value (e.g. ``1 - val_acc``).
    title : str
    ylabel : str
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = [r['epoch'] for r in records]
    for label, value in curves.items():
        ax.plot(epochs, [value(r) for r in records], marker='o', markersize=3, label=label)
    ax.set_xlabel('epoch')
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    # Close, not just clear: a figure per epoch would otherwise pile up in pyplot.
    plt.close(fig)
    return path
