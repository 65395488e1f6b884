"""``python -m gluon_atac.export``: the command in :mod:`gluon_atac.commands.export`.

``gluon_atac.export`` itself stays the library function
:func:`gluon_atac.utils.export.export` (the package root keeps the name from being rebound
when this package is imported).
"""
