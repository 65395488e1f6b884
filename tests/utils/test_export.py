"""gluon_atac.export (the library function): units' settings, context, re-import."""
import mxnet as mx
import numpy as np

import gluon_atac as ga
from gluon_atac.nn import ChaATAC


def _units(net):
    units = []
    net.apply(lambda block: units.append(block) if isinstance(block, ChaATAC) else None)
    return units


def test_export_restores_the_fused_settings_and_writes_plain_operators(tmp_path):
    net = ga.get_model('cifar_resnet8_v2', classes=10)
    net.initialize(mx.init.MSRAPrelu())
    units = _units(net)
    settings = [None, True] + [None] * (len(units) - 2)
    for unit, fused in zip(units, settings):
        unit.fused = fused
    symbol, params = ga.export(net, str(tmp_path / 'r8'), input_shape=(2, 3, 32, 32))
    assert [unit.fused for unit in units] == settings
    with open(symbol) as handle:
        assert 'atac_gate' not in handle.read()
    x = mx.nd.random.uniform(-1, 1, shape=(2, 3, 32, 32))
    loaded = mx.gluon.SymbolBlock.imports(symbol, ['data'], params)
    np.testing.assert_allclose(loaded(x).asnumpy(), net(x).asnumpy(), rtol=1e-4, atol=1e-6)


def test_export_traces_where_the_parameters_live(tmp_path, monkeypatch):
    net = ga.get_model('cifar_resnet8_v2', classes=10, act_type='relu')
    net.initialize(ctx=mx.cpu(1))
    seen = []
    real_zeros = mx.nd.zeros
    monkeypatch.setattr(mx.nd, 'zeros', lambda *a, **k: seen.append(k.get('ctx')) or
                        real_zeros(*a, **k))
    ga.export(net, str(tmp_path / 'r8'), input_shape=(1, 3, 32, 32))
    assert seen[0] == mx.cpu(1)
