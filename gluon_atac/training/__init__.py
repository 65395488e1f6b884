"""Training: two recipes on one engine.

- :mod:`gluon_atac.training.cifar`: the CIFAR recipe behind ``train_cifar.py``.
- :mod:`gluon_atac.training.imagenet`: the ImageNet recipe behind ``train_imagenet.py``.
- :mod:`gluon_atac.training.engine`: what both share (flags, devices, schedules, the
  epoch loop, losses, evaluation, checkpoints and run files, distributed set-up).

Epochs are numbered from 1 in everything a run writes (``metrics.jsonl``, the checkpoint,
the log): epoch ``k`` is the ``k``-th finished epoch. Only the original's file names keep
their own numbering (see :class:`gluon_atac.training.engine.run_files.RunFiles`).
"""
