"""``python -m gluon_atac.demo``: the command in :mod:`gluon_atac.commands.demo`."""
from .commands.demo import main

if __name__ == '__main__':
    main()
