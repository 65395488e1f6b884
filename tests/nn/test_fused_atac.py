"""The fused ATAC gate computes what the Gluon graph computes, and falls back when it can't."""
import contextlib
import shutil

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gluon_atac import get_model, ops
from gluon_atac.nn import ChaATAC, gluon_graph
from gluon_atac.utils.onnx_export import float32_sensitivity

pytestmark = pytest.mark.skipif(shutil.which('g++') is None, reason='no C++ compiler')


@pytest.fixture(scope='module', autouse=True)
def library():
    """The native library must build and load wherever g++ exists (CI included)."""
    assert ops.load() is not None


def make_unit(fused, channels=16, use_relu=True, use_global=False, seed=0, **kwargs):
    """A unit with random weights and non-trivial BN affine and running statistics."""
    unit = ChaATAC(channels, 2, use_relu=use_relu, use_global=use_global, **kwargs)
    unit.fused = None if fused else False
    unit.initialize(mx.init.Normal(0.5))
    rng = np.random.RandomState(seed)
    for name, param in sorted(unit.collect_params().items()):
        if name.endswith(('gamma', 'running_var')):
            value = rng.uniform(0.5, 1.5, param.shape)
        elif name.endswith(('beta', 'running_mean')):
            value = rng.normal(0, 0.3, param.shape)
        else:
            value = rng.normal(0, 0.5, param.shape)
        param.set_data(mx.nd.array(value))
    return unit


def run(unit, x, train, record=True):
    """Output, input gradient, and every parameter's gradient (or value if it has none)."""
    x = x.copy()
    x.attach_grad()
    dy = mx.nd.array(np.cos(np.arange(x.size)).reshape(x.shape))
    if record:
        with autograd.record(train_mode=train):
            y = unit(x)
        y.backward(dy)
    else:
        y = unit(x)
    out = {'y': y.asnumpy(), 'dx': x.grad.asnumpy()}
    for name, param in unit.collect_params().items():
        short = name[len(unit.prefix):]
        out[short] = (param.grad() if param.grad_req != 'null' else param.data()).asnumpy()
    return out


def assert_same(fast, ref):
    assert fast.keys() == ref.keys()
    for key in ref:
        scale = max(1.0, np.abs(ref[key]).max())
        np.testing.assert_allclose(fast[key], ref[key], rtol=1e-4, atol=2e-5 * scale,
                                   err_msg=key)


@pytest.mark.parametrize('hybridize', [False, True])
@pytest.mark.parametrize('use_relu', [True, False])
@pytest.mark.parametrize('shape', [(4, 16, 8, 8), (3, 16, 7, 5), (3, 32, 7, 5)])
def test_training_step_matches_gluon(shape, use_relu, hybridize):
    """Batch-statistics forward, all gradients and the running statistics it moves.

    16 channels (inner width 8) recompute z in every training pass, 32 keep it.
    """
    channels = shape[1]
    fast = make_unit(True, channels=channels, use_relu=use_relu)
    ref = make_unit(False, channels=channels, use_relu=use_relu)
    assert fast._fusable() and not ref._fusable()
    if hybridize:
        fast.hybridize()
        ref.hybridize()
    x = mx.nd.array(np.random.RandomState(1).normal(0, 1, shape))
    assert_same(run(fast, x, train=True), run(ref, x, train=True))
    # a second step starts from the moved running statistics and the same weights
    assert_same(run(fast, x * 2, train=True), run(ref, x * 2, train=True))


@pytest.mark.parametrize('hybridize', [False, True])
def test_inference_and_its_gradient_are_exact(hybridize):
    """Running statistics in the forward, and the true gradient through them.

    Under ``autograd.record(train_mode=False)`` MXNet's BatchNorm backward does not
    differentiate the function its forward computed (finite differences disagree with
    it), so the reference is the same unit with ``use_global_stats=True``, whose
    BatchNorm is the fixed affine map the inference forward applies.
    """
    fast = make_unit(True, channels=32)
    ref = make_unit(False, channels=32, norm_kwargs={'use_global_stats': True})
    plain = make_unit(False, channels=32)
    if hybridize:
        for unit in (fast, ref, plain):
            unit.hybridize()
    x = mx.nd.array(np.random.RandomState(2).normal(0, 1, (2, 32, 6, 6)))
    np.testing.assert_allclose(fast(x).asnumpy(), plain(x).asnumpy(),
                               rtol=1e-5, atol=1e-6)
    assert_same(run(fast, x, train=False), run(ref, x, train=False))


class FrozenStatsBN(gluon.nn.BatchNorm):
    """A norm layer that is not plain BatchNorm: the fused path must not take it."""


@pytest.mark.parametrize('kwargs', [
    {'use_global': True},
    {'norm_layer': FrozenStatsBN},
    {'norm_kwargs': {'use_global_stats': True}},
    {'norm_kwargs': {'scale': False}},
])
def test_unsupported_configurations_fall_back_and_still_work(kwargs):
    unit = make_unit(True, **kwargs)
    assert not unit._fusable()
    x = mx.nd.array(np.random.RandomState(3).normal(0, 1, (2, 16, 4, 4)))
    out = run(unit, x, train=True)
    assert np.isfinite(out['y']).all() and np.isfinite(out['dx']).all()


def test_gradient_accumulation_falls_back():
    unit = make_unit(True)
    unit.collect_params().setattr('grad_req', 'add')
    for param in unit.collect_params().values():
        if 'running' in param.name:
            param.grad_req = 'null'
    assert not unit._fusable()


def test_fused_flag_off_uses_gluon():
    unit = make_unit(True)
    assert unit._fusable()
    unit.fused = False
    assert not unit._fusable()


def test_open_atac_fixture_gives_its_logits_through_the_fused_path(open_atac_dir):
    """The original's parameter file loads into the fused model and gives its logits."""
    data = np.load('%s/r20_b3_chaatac_r2_relu_c100.npz' % open_atac_dir)
    net = get_model('cifar_resnet20_v2', classes=100,
                    pretrained='%s/r20_b3_chaatac_r2_relu_c100.params' % open_atac_dir)
    assert all(b._fusable() for b in _walk(net) if isinstance(b, ChaATAC))
    net.hybridize()
    # The logits were computed on another CPU: allow what float32 noise moves them by.
    tolerance = 30 * float32_sensitivity(net, data['x'])
    assert 0 < tolerance < 1e-3 * np.abs(data['y']).max()
    logits = net(mx.nd.array(data['x'])).asnumpy()
    np.testing.assert_allclose(logits, data['y'], rtol=0, atol=tolerance)


def test_whole_network_training_step_matches_gluon():
    """A CIFAR ResNet-8 with ATAC everywhere: loss gradients of every parameter agree."""
    x = mx.nd.array(np.random.RandomState(4).uniform(-1, 1, (4, 3, 16, 16)))
    label = mx.nd.array([0, 1, 2, 3])
    grads = []
    for fused in (True, False):
        mx.random.seed(7)
        net = get_model('cifar_resnet8_v2', classes=10)
        net.initialize(mx.init.MSRAPrelu())
        with contextlib.nullcontext() if fused else gluon_graph(net):
            n_fused = sum(b._fusable() for b in _walk(net) if isinstance(b, ChaATAC))
            assert n_fused == (7 if fused else 0)
            net.hybridize()
            with autograd.record():
                loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), label)
            loss.backward()
        grads.append({k[len(net.prefix):]: (p.grad() if p.grad_req != 'null' else p.data())
                      .asnumpy() for k, p in net.collect_params().items()})
    assert_same(*grads)


def _walk(block):
    yield block
    for child in block._children.values():
        yield from _walk(child)


@pytest.mark.parametrize('hybridize', [False, True])
@pytest.mark.parametrize('shape,use_relu', [((2, 128, 4, 4), True), ((3, 128, 7, 7), True),
                                            ((2, 128, 3, 5), False)])
def test_wide_units_run_gluon_unless_forced(shape, use_relu, hybridize):
    """Units wider than FUSED_MAX_CHANNELS run the Gluon graph by default; fused=True runs
    the native gate, which equals the Gluon graph in training and inference."""
    x = mx.nd.array(np.random.RandomState(3).randn(*shape))
    unit = make_unit(True, channels=128, use_relu=use_relu)
    ref = make_unit(False, channels=128, use_relu=use_relu)
    assert (unit._native_path(), ref._native_path()) == (None, None)
    unit.fused = True
    assert unit._native_path() == 'gate'
    if hybridize:
        unit.hybridize()
        ref.hybridize()
    assert_same(run(unit, x, train=True), run(ref, x, train=True))
    assert_same(run(unit, x * 2, train=True), run(ref, x * 2, train=True))
    np.testing.assert_allclose(unit(x).asnumpy(), ref(x).asnumpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('hybridize', [False, True])
def test_one_unit_applied_twice_in_one_graph_keeps_each_calls_intermediates(hybridize):
    """The operator keeps a and z from its forward for its backward: two calls of one unit
    before a single backward must not overwrite each other's."""
    class Twice(gluon.HybridBlock):
        def __init__(self, unit):
            super(Twice, self).__init__()
            self.unit = unit

        def hybrid_forward(self, F, x):
            return self.unit(x) + self.unit(F.tanh(x) * 3)

    outs = []
    for fused in (True, False):
        net = Twice(make_unit(fused))
        if hybridize:
            net.hybridize()
        x = mx.nd.array(np.random.RandomState(5).normal(0, 1, (3, 16, 6, 6)))
        out = run(net, x, train=True)
        outs.append({k.split('_', 1)[-1]: v for k, v in out.items()})
    assert_same(*outs)


@pytest.mark.parametrize('shape', [(2, 16, 40, 40), (3, 48, 7, 7), (1, 8, 3, 1)])
def test_several_tiles_and_ragged_tails_match_gluon(shape):
    """Samples split into several pixel tiles, and tiles that end inside a vector."""
    channels = shape[1]
    fast, ref = make_unit(True, channels=channels), make_unit(False, channels=channels)
    x = mx.nd.array(np.random.RandomState(6).normal(0, 1, shape))
    assert_same(run(fast, x, train=True), run(ref, x, train=True))
    np.testing.assert_allclose(fast(x).asnumpy(), ref(x).asnumpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('channels', [16, 128])
def test_saturated_gates_give_zero_and_one_not_nan(channels):
    """Gate pre-activations far past +-88, where exp(x) leaves float32, narrow and wide.

    BN2's shift puts whole channels at about -300, -60, 60 and 300: the sigmoid must come
    out as 0 or 1 (the native one caps its exponent), never inf or NaN, in training and
    in inference.
    """
    shift = np.tile([-300.0, -60.0, 60.0, 300.0], channels // 4)
    fast, ref = make_unit(True, channels=channels), make_unit(False, channels=channels)
    fast.fused = True
    for unit in (fast, ref):
        unit._layers()[3].beta.set_data(mx.nd.array(shift))
    x = mx.nd.array(np.random.RandomState(4).normal(0, 1, (2, channels, 5, 5)))
    fast_out, ref_out = run(fast, x, train=True), run(ref, x, train=True)
    assert all(np.isfinite(v).all() for v in fast_out.values())
    assert_same(fast_out, ref_out)
    y = fast(x).asnumpy()
    np.testing.assert_allclose(y, ref(x).asnumpy(), rtol=1e-5, atol=1e-6)
    # channels shifted up pass x through, channels shifted down are closed
    np.testing.assert_array_equal(y[:, 3::4], x.asnumpy()[:, 3::4])
    assert np.abs(y[:, 0::4]).max() < 1e-30
