"""Deployable files of a network.

``gluon_atac.export`` is the library function :func:`export` (MXNet symbol + params; see
:mod:`gluon_atac.utils.export`), and ``python -m gluon_atac.export`` the command of
:mod:`gluon_atac.export.command`. The name is a package whose ``__init__`` holds only the
function, so ``import gluon_atac`` binds ``gluon_atac.export`` to the function without
loading any command-line code, and a later ``import gluon_atac.export.command`` cannot
rebind it (the package is imported already).
"""
from ..utils.export import export

__all__ = ['export']
