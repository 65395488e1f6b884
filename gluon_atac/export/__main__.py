"""``python -m gluon_atac.export``: see :func:`gluon_atac.export.command.main`."""
from .command import main

main()
