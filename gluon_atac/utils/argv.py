"""Command-line argument lists as data."""

__all__ = ['without_options']


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
