"""Command lines: argument lists as data, and the commands' parsers."""
import argparse

__all__ = ['without_options', 'command_parser']


def without_options(argv, names):
    """``argv`` less the options ``names`` and their values (``--x v`` and ``--x=v``).

    Parameters
    ----------
    argv : list of str
    names : iterable of str
        Option spellings such as ``'--json'``; each is taken to have one value.
    """
    names = tuple(names)
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not arg.startswith(tuple(name + '=' for name in names)):
            out.append(arg)
    return out


def command_parser(command, description, **kwargs):
    """The argument parser of ``python -m gluon_atac.<command>``, whose ``usage:`` line
    shows that spelling (also under the ``gluon-atac-<command>`` console script).

    Parameters
    ----------
    command : str
        Module name under :mod:`gluon_atac.commands`, e.g. ``'evaluate'``.
    description : str
    **kwargs
        Further ``argparse.ArgumentParser`` arguments.
    """
    return argparse.ArgumentParser(prog='python -m gluon_atac.%s' % command,
                                   description=description, **kwargs)
