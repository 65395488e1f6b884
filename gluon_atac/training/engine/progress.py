"""Progress bars with throughput for long loops."""
import sys

from tqdm import tqdm

__all__ = ['progress']


def progress(total, desc, enabled=True, unit='img'):
    """A tqdm bar counting samples (so its rate reads images/s).

    Parameters
    ----------
    total : int or None
        Samples in the loop (``None``: unknown, the bar counts without an end).
    desc : str
    enabled : bool, default True
        ``False`` (``--no-progress``) or a non-TTY stderr gives a silent bar.
    unit : str, default 'img'

    Returns
    -------
    tqdm.tqdm
        Call ``update(batch_size)`` per batch and ``close()`` at the end.
    """
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, dynamic_ncols=True,
                disable=not (enabled and sys.stderr.isatty()), leave=False)
