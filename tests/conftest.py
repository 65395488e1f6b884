"""Shared test fixtures: files written by the original open-atac code, tiny data sets and
the ONNX checks' networks.

The data sets are session fixtures: each pytest-xdist worker writes each one once. Tests
only read them; a test that damages files copies them (or writes its own) first.
"""
import os
import subprocess
import sys

import pytest

from gluon_atac.data.imagenet import write_synthetic_imagenet
from support import write_cifar

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')


@pytest.fixture
def open_atac_dir():
    """Folder with parameter files, inputs and logits written by open-atac."""
    return os.path.join(FIXTURES, 'open_atac')


@pytest.fixture(scope='session')
def chaotic_resnet32(tmp_path_factory):
    """A ResNet-32 whose float32 logits are chaotic, as the reporter's of issue 17 were.

    ATAC without the inner ReLU and seeded random BatchNorm running statistics, gammas
    and betas (trained ones would be tamer): rounding one input pixel differently moves
    its logits by a few percent of their scale. Returns ``(net, params_file)``.
    """
    import mxnet as mx
    import numpy as np
    import gluon_atac as ga

    mx.random.seed(0)
    net = ga.get_model('cifar_resnet32_v2', classes=100, use_relu=False)
    net.initialize(mx.init.MSRAPrelu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    rng = np.random.RandomState(0)
    for name, param in net.collect_params().items():
        if name.endswith('running_var'):
            value = rng.uniform(0.8, 1.2, param.shape)
        elif name.endswith('running_mean'):
            value = rng.normal(0.0, 0.2, param.shape)
        elif param.grad_req == 'null':
            # What training never changes keeps its value: the input BN has no scale, and
            # MXNet ignores its gamma where mx2onnx would not.
            continue
        elif name.endswith('gamma'):
            value = rng.normal(1.0, 0.2, param.shape)
        elif name.endswith('beta'):
            value = rng.normal(0.0, 0.2, param.shape)
        else:
            continue
        param.set_data(mx.nd.array(value))
    path = str(tmp_path_factory.mktemp('chaotic') / 'r32.params')
    net.save_parameters(path)
    return net, path


@pytest.fixture
def drop_batchnorm():
    """``drop(path, index)``: the ONNX file with its ``index``-th BatchNormalization an Identity.

    A conversion that lost one layer, as a wrong converter could; returns the new path.
    """
    def drop(path, index=1):
        import onnx

        model = onnx.load(path)
        node = [n for n in model.graph.node if n.op_type == 'BatchNormalization'][index]
        node.op_type = 'Identity'
        del node.input[1:], node.attribute[:]
        out = path[:-len('.onnx')] + '-dropped.onnx'
        onnx.save(model, out)
        return out
    return drop


@pytest.fixture(scope='session')
def tiny_imagenet(tmp_path_factory):
    """A tiny learnable ImageNet-style set: 4 classes of 40 px images, 6 training and 2
    validation images each, as class folders and record files."""
    return write_synthetic_imagenet(str(tmp_path_factory.mktemp('tinyin')), classes=4,
                                    train_per_class=6, val_per_class=2, size=40)


@pytest.fixture(scope='session')
def tiny_cifar(tmp_path_factory):
    """``tiny_cifar(dataset='cifar10', layout='bin', n_train=64, n_test=32)``: a folder of
    random CIFAR files (seed 0), written on the first request of each shape."""
    written = {}

    def folder(dataset='cifar10', layout='bin', n_train=64, n_test=32):
        shape = (dataset, layout, n_train, n_test)
        if shape not in written:
            written[shape] = str(tmp_path_factory.mktemp('%s_%s' % (dataset, layout)))
            write_cifar(written[shape], dataset, layout, n_train=n_train, n_test=n_test)
        return written[shape]
    return folder


@pytest.fixture(scope='session')
def horovodrun():
    """The ``horovodrun`` of this interpreter's environment.

    Skips with the one line ``make venv`` wrote where it could not build Horovod; fails
    where no such line exists and Horovod still does not import, so a test never skips
    silently on a machine where the build succeeded.
    """
    off = os.path.join(sys.prefix, 'horovod-unavailable')
    if os.path.isfile(off):
        with open(off) as handle:
            pytest.skip(handle.read().strip())
    # Asked in a child: once horovod.mxnet is imported, a process cannot load the native
    # gate's library any more (SIGFPE), and later tests on this worker would.
    probe = subprocess.run([sys.executable, '-c', 'import horovod.mxnet'],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if probe.returncode != 0:
        last = (probe.stdout.strip().splitlines() or ['no output'])[-1]
        pytest.fail('horovod.mxnet does not import (%s), yet `make venv` recorded no failed '
                    'build in %s: run make venv' % (last, off))
    return os.path.join(os.path.dirname(sys.executable), 'horovodrun')
