"""``python -m gluon_atac.export``: the command in :mod:`gluon_atac.commands.export`."""
from ..commands.export import main

main()
