"""Helpers of the test suite that the installed library does not need.

``pytest.ini`` puts this folder on ``sys.path``, so every test imports ``support``.
"""
import os
import struct

import numpy as np

from gluon_atac.data import write_cifar_files
from gluon_atac.experiments import expand, smoke_data_dir

__all__ = ['write_cifar', 'python2_batch', 'smoke_runs', 'SMOKE_ONLY', 'processes_with']

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


def _py2_str(value):
    # Python 2's str at protocol 2: SHORT_BINSTRING up to 255 bytes, else BINSTRING.
    if len(value) < 256:
        return b'U' + bytes([len(value)]) + value
    return b'T' + struct.pack('<i', len(value)) + value


def _py2_int(value):
    return b'K' + bytes([value]) if value < 256 else b'J' + struct.pack('<i', value)


def python2_batch(images, labels, batch_label=b'training batch 1 of 1', dtype_state=None):
    """A CIFAR python batch as the official files hold it: Python 2's cPickle at
    protocol 2, byte for byte the opcodes of ``cifar-10-batches-py/data_batch_1``.

    Python 3 cannot write this form (it pickles bytes through ``_codecs.encode``), and it
    is the one every download holds, so the reader is tested on it.

    Parameters
    ----------
    images : ndarray
        uint8 ``N x 3072`` rows (channel planes).
    labels : dict
        Label key (bytes) -> list of int.
    batch_label : bytes
    dtype_state : bytes, optional
        Pickled state tuple of the array's dtype, to craft a hostile file; default the
        official ``(3, '|', None, None, None, -1, -1, 0)``.

    Returns
    -------
    bytes
    """
    state = dtype_state or (b'(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t')
    out = [b'\x80\x02}q\x01(', _py2_str(b'data'),
           b'cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03K\x00\x85',
           _py2_str(b'b'), b'\x87Rq\x04(K\x01', _py2_int(images.shape[0]),
           _py2_int(images.shape[1]), b'\x86cnumpy\ndtype\nq\x05', _py2_str(b'u1'),
           b'K\x00K\x01\x87Rq\x06', state, b'b\x89', _py2_str(images.tobytes()), b'tb']
    for key, values in labels.items():
        out += [_py2_str(key), b']q\x07(']
        out += [_py2_int(int(v)) for v in values]
        out.append(b'e')
    out += [_py2_str(b'batch_label'), _py2_str(batch_label), _py2_str(b'filenames'), b']']
    if len(images):
        out += [b'('] + [_py2_str(b'img_%d.png' % i) for i in range(len(images))] + [b'e']
    out.append(b'u.')
    return b''.join(out)


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
