"""``python -m gluon_atac.classify``: the command in :mod:`gluon_atac.commands.classify`."""
from .commands.classify import main

if __name__ == '__main__':
    main()
