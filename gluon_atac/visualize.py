"""``python -m gluon_atac.visualize``: the command in :mod:`gluon_atac.commands.visualize`."""
from .commands.visualize import main

if __name__ == '__main__':
    main()
