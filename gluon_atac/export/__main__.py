"""``python -m gluon_atac.export``: see :func:`gluon_atac.export.main`."""
from . import main

main()
