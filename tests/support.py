"""Helpers of the test suite that the installed library does not need.

``pytest.ini`` puts this folder on ``sys.path``, so every test imports ``support``.
"""
import os

import mxnet as mx
import numpy as np

from gluon_atac.data import write_cifar_files
from gluon_atac.experiments import expand, smoke_data_dir

__all__ = ['write_cifar', 'smoke_runs', 'SMOKE_ONLY', 'input_noise_sensitivity',
           'processes_with']

# Four runs: ReLU and ATAC ResNet-8, two seeds each, on tiny generated CIFAR-10.
SMOKE_ONLY = ['relu-b1-*', 'atac-b1-*']


def write_cifar(directory, dataset, layout='bin', n_train=64, n_test=32, seed=0, flat=False):
    """Write small random CIFAR files in an official layout.

    Parameters
    ----------
    directory : str
        Receives the official sub-folder (or, with ``flat``, the files themselves).
    dataset : {'cifar10', 'cifar100'}
    layout : {'bin', 'py'}, default 'bin'
        Binary ``.bin`` records or python pickles.
    n_train, n_test : int
        Records written; CIFAR-10's training records are spread over its 5 batches.
    seed : int, default 0
    flat : bool, default False
        Put the files directly in ``directory``.

    Returns
    -------
    dict
        ``'train'`` and ``'test'``: the written ``(images, labels)``, labels being the fine
        ones for CIFAR-100 (coarse = fine // 5 in these files).
    """
    rng = np.random.RandomState(seed)
    classes = 10 if dataset == 'cifar10' else 100
    written = {}
    for split, count in (('train', n_train), ('test', n_test)):
        images = rng.randint(0, 256, size=(count, 32, 32, 3)).astype(np.uint8)
        written[split] = (images, rng.randint(0, classes, size=count).astype(np.int32))
    write_cifar_files(directory, dataset, written['train'], written['test'], layout, flat)
    return written


def smoke_runs(root, **kwargs):
    """The smoke runs of the activations preset under ``root``.

    Parameters
    ----------
    root : str
        Output root of the grid; its tiny CIFAR-10 is written there too.
    **kwargs
        Passed to :func:`gluon_atac.experiments.expand`.

    Returns
    -------
    list
        The four runs of :data:`SMOKE_ONLY`, two seeds each.
    """
    data_dir = smoke_data_dir(root, 'cifar10')
    return expand('activations', root, seeds=2, budget='smoke', dataset='cifar10',
                  data_dir=data_dir, only=SMOKE_ONLY, **kwargs)


def input_noise_sensitivity(net, x, draws=3, relative=1e-7, seed=0):
    """How far float32 rounding-sized input noise moves a network's outputs.

    Another CPU (instruction set, thread count) sums in another order, which perturbs a
    forward pass about as much as noise of float32's resolution on the input does; a
    tolerance a few tens of times this is safe on any machine and still catches a wrong
    weight or layer.

    Parameters
    ----------
    net : mxnet.gluon.Block
    x : numpy.ndarray
        A float32 input batch.
    draws : int, default 3
        Noise draws; the largest change is returned.
    relative : float, default 1e-7
        Noise scale relative to each input value (float32's resolution is 6e-8).
    seed : int, default 0

    Returns
    -------
    float
        The largest absolute change of any output over the draws.
    """
    rng = np.random.RandomState(seed)
    clean = net(mx.nd.array(x)).asnumpy()
    moved = 0.0
    for _ in range(draws):
        noisy = x * (1 + relative * rng.standard_normal(x.shape))
        out = net(mx.nd.array(noisy.astype(np.float32))).asnumpy()
        moved = max(moved, float(np.abs(out - clean).max()))
    return moved


def processes_with(marker):
    """PIDs of the processes whose command line contains ``marker`` (a job's leftovers)."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                if marker.encode() in handle.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found
