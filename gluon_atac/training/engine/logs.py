"""Logging to the console and a file."""
import logging
import logging.handlers
import os

__all__ = ['setup_logging', 'open_log_file']

_FORMAT = ('%(asctime)s %(message)s', '%Y-%m-%d %H:%M:%S')


class _Deferred(logging.handlers.MemoryHandler):
    """Holds the records meant for a log file that is not opened yet."""

    def __init__(self, log_file):
        # Never flushes on its own: open_log_file hands the records over.
        super().__init__(capacity=1 << 30, flushLevel=logging.CRITICAL + 1)
        self.log_file = log_file


def setup_logging(log_file=None, name='gluon_atac', defer=False):
    """Logger printing to stderr and, if given, appending to ``log_file``.

    Parameters
    ----------
    log_file : str, optional
    name : str, default 'gluon_atac'
    defer : bool, default False
        Keep the file's records in memory, and the file unopened, until
        :func:`open_log_file`: a run that is refused on its checks then leaves the log of
        the run it would have replaced as it was.

    Returns
    -------
    logging.Logger
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handlers = [logging.StreamHandler()]
    if log_file:
        handlers.append(_Deferred(log_file) if defer else _file_handler(log_file))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(*_FORMAT))
        logger.addHandler(handler)
    return logger


def _file_handler(log_file):
    os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
    return logging.FileHandler(log_file)


def open_log_file(logger):
    """Open the log file :func:`setup_logging` deferred and write the records kept so far.

    Does nothing for a logger without a deferred file.
    """
    for handler in list(logger.handlers):
        if isinstance(handler, _Deferred):
            target = _file_handler(handler.log_file)
            target.setFormatter(logging.Formatter(*_FORMAT))
            handler.setTarget(target)
            handler.flush()
            logger.removeHandler(handler)
            handler.close()
            logger.addHandler(target)
