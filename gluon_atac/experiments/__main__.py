"""``python -m gluon_atac.experiments``: the command in :mod:`gluon_atac.commands.experiments`."""
import sys

from ..commands.experiments import main

# main returns the exit status (1 when a run failed, 130 when interrupted).
sys.exit(main())
