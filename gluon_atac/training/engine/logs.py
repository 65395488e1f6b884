"""Logging to the console and a file."""
import logging
import os

__all__ = ['setup_logging']


def setup_logging(log_file=None, name='gluon_atac'):
    """Logger printing to stderr and, if given, appending to ``log_file``.

    Parameters
    ----------
    log_file : str, optional
    name : str, default 'gluon_atac'

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
    formatter = logging.Formatter('%(asctime)s %(message)s', '%Y-%m-%d %H:%M:%S')
    handlers = [logging.StreamHandler()]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger
