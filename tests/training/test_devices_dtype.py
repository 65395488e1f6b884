"""Multi-device and float16 paths of the recipes, proved on CPU contexts."""
import logging

import mxnet as mx
import numpy as np

from gluon_atac.model_zoo import get_model
from gluon_atac.training import imagenet as train

SMALL = ['--model', 'resnet18_v1b', '--classes', '4', '--input-size', '32']


def test_imagenet_casts_before_loading_a_float16_snapshot(tmp_path, monkeypatch):
    # The published run saved after net.cast('float16'): BatchNorm stays float32.
    snapshot = get_model('resnet18_v1b', classes=4)
    snapshot.initialize(mx.init.MSRAPrelu())
    snapshot(mx.nd.zeros((1, 3, 32, 32)))
    snapshot.cast('float16')
    path = str(tmp_path / 'fp16.params')
    snapshot.save_parameters(path)
    saved = mx.nd.load(path)
    assert {a.dtype for a in saved.values()} == {np.float16, np.float32}
    dtypes_at_load = []
    load = train.load_parameters

    def spy(net, *a, **k):
        dtypes_at_load.append({np.dtype(p.dtype) for p in net.collect_params('.*conv.*weight').values()})
        return load(net, *a, **k)

    monkeypatch.setattr(train, 'load_parameters', spy)
    # _build_net directly: run() refuses float16 without a GPU before building anything.
    args = train.parse_args(SMALL + ['--dtype', 'float16', '--resume-params', path,
                                     '--save-dir', str(tmp_path)])
    ctx = [mx.cpu(0), mx.cpu(1)]
    net = train._build_net(args, ctx, logging.getLogger('test'))
    assert dtypes_at_load == [{np.dtype('float16')}]
    loaded = net._collect_params_with_prefix()
    assert set(loaded) == set(saved)
    for name, array in saved.items():
        for device in ctx:
            value = loaded[name].data(device)
            assert value.dtype == array.dtype, name
            assert np.array_equal(value.asnumpy(), array.asnumpy()), name
