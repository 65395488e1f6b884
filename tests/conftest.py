"""Shared test fixtures: files written by the original open-atac code, ONNX checks."""
import os

import pytest

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
