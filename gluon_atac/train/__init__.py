"""Training entry points: ``gluon_atac.train.cifar`` is the logic of ``train_cifar.py``."""
