"""``python -m gluon_atac.launch``: the command in :mod:`gluon_atac.commands.launch`."""
from .commands.launch import main

if __name__ == '__main__':
    main()
