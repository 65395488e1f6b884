"""Per-epoch metrics as JSON lines, and the training-history plot."""
import json
import os

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
        with open(path, 'w') as handle:
            for record in self.records:
                handle.write(json.dumps(record) + '\n')

    def append(self, record):
        """Write one epoch's record and flush it to disk."""
        self.records.append(dict(record))
        with open(self.path, 'a') as handle:
            handle.write(json.dumps(record) + '\n')
            handle.flush()
            os.fsync(handle.fileno())


def read_metrics(path):
    """Records of a ``metrics.jsonl`` file (an empty list if it does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


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
