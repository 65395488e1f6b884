"""``python -m gluon_atac.experiments``: the command in :mod:`gluon_atac.commands.experiments`."""
from ..commands.experiments import main

main()
