"""``python -m gluon_atac.evaluate``: the command in :mod:`gluon_atac.commands.evaluate`."""
from .commands.evaluate import main

if __name__ == '__main__':
    main()
