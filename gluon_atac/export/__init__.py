"""``python -m gluon_atac.export``: the export command, in :mod:`gluon_atac.export.command`.

``gluon_atac.export`` itself stays the library function
:func:`gluon_atac.utils.export.export` (the package root keeps the name from being rebound
when this package is imported).
"""
