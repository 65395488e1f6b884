"""``python -m gluon_atac.summary``: the command in :mod:`gluon_atac.commands.summary`."""
from .commands.summary import main

if __name__ == '__main__':
    main()
