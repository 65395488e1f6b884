"""Multi-device and float16 paths of the recipes, proved on CPU contexts."""
import logging
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from gluon_atac import ops
from gluon_atac.data.imagenet import val_batches
from gluon_atac.model_zoo import get_model, load_parameters
from gluon_atac.training import cifar
from gluon_atac.training import imagenet as train
from gluon_atac.training.engine.devices import average_running_stats, split_batch
from gluon_atac.training.engine import loop
from gluon_atac.training.engine.evaluation import evaluate
from gluon_atac.training.engine.loop import EpochStats
from gluon_atac.training.engine.losses import mixup_lambda, training_targets

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


@pytest.fixture
def unfused(monkeypatch):
    """ATAC units run the plain Gluon graph, the one GPUs execute (GLUON_ATAC_FUSED=0)."""
    monkeypatch.setattr(ops, 'load', lambda: None)


def imagenet_args(tiny, directory, *extra):
    return train.parse_args(SMALL + [
        '--batch-size', '4', '-j', '0', '--no-progress', '--log-interval', '0', '--mode',
        'hybrid', '--data-dir', tiny, '--save-dir', str(directory)] + list(extra))


class PerStepStats(EpochStats):
    """The engine's epoch statistics, also read back after every step as the loop of commit
    da3f5bf did: the same run's losses and hits summed in Python floats.

    Every instance made while the class stands in for ``EpochStats`` is kept in
    ``made``, one per training epoch.
    """
    made = []

    def __init__(self):
        super(PerStepStats, self).__init__()
        self.steps = []
        PerStepStats.made.append(self)

    def add(self, losses, outputs, labels):
        super(PerStepStats, self).add(losses, outputs, labels)
        self.steps.append(
            (sum(loss.sum().asscalar() for loss in losses),
             sum((o.argmax(axis=1) == y.astype('float32')).sum().asscalar()
                 for o, y in zip(outputs, labels))))

    def per_step(self):
        """Mean loss and accuracy from the per-step reads, and the float64 rounding their
        sum and the engine's (another order) can differ by."""
        losses = [loss for loss, _ in self.steps]
        loss = sum(losses) / self.samples
        rounding = 4 * len(losses) * np.finfo(np.float64).eps * sum(map(abs, losses))
        return loss, sum(hits for _, hits in self.steps) / self.samples, rounding


@pytest.fixture
def per_step(monkeypatch):
    """The per-step statistics of each epoch trained while the fixture is active."""
    monkeypatch.setattr(loop, 'EpochStats', PerStepStats)
    monkeypatch.setattr(PerStepStats, 'made', [])
    return PerStepStats.made


def per_step_metrics(loss, stats):
    """The per-step reads' mean loss, which ``loss`` (the engine's) must equal up to the
    rounding of another summation order, and their accuracy.

    Hit counts are small integers, exact in float32 and float64: the accuracy, and the
    error computed from it, are the same floats whichever loop summed them.
    """
    step_loss, step_accuracy, rounding = stats.per_step()
    assert loss == pytest.approx(step_loss, rel=0, abs=rounding / stats.samples)
    return step_accuracy


def test_cifar_metrics_on_two_devices_match_the_per_step_loop(tmp_path, tiny_cifar,
                                                               unfused, per_step):
    result = cifar.main(['--dataset', 'cifar10', '--data-dir', tiny_cifar(), '--blocks', '1',
                         '--batch-size', '16', '--no-progress', '--save-dir', str(tmp_path),
                         '--num-epochs', '2', '--gpus', '0,1', '--mode', 'hybrid'])
    records = result['records']
    assert [r['epoch'] for r in records] == [1, 2] and len(per_step) == 2
    for record, stats in zip(records, per_step):
        # Every step (16 images on each device) went into the statistics.
        assert (stats.samples, len(stats.steps)) == (64, 2)
        assert record['train_acc'] == per_step_metrics(record['train_loss'], stats)
        assert record['lr'] == 0.1
    assert result['best_val_acc'] == max(r['val_acc'] for r in records)
    assert [r['best_val_acc'] for r in records] == [records[0]['val_acc'],
                                                    result['best_val_acc']]


@pytest.mark.parametrize('gpus', ['', '0,1'])
def test_imagenet_metrics_match_the_per_step_loop(tmp_path, tiny_imagenet, unfused, gpus,
                                                  monkeypatch, per_step):
    trainers = []
    real = gluon.Trainer
    monkeypatch.setattr(gluon, 'Trainer', lambda *a, **k: trainers.append(
        real(*a, **k)) or trainers[-1])
    extra = ['--label-smoothing'] if gpus else []
    result = train.run(imagenet_args(tiny_imagenet, tmp_path, '--num-epochs', '1', '--gpus',
                                     gpus, *extra))
    record = result['records'][0]
    # Every step (4 images on each device) went into the statistics.
    steps = 24 // (4 * len(gpus.split(',')))
    assert len(per_step) == 1 and (per_step[0].samples, len(per_step[0].steps)) == (24, steps)
    accuracy = per_step_metrics(record['train_loss'], per_step[0])
    assert record['train_top1_err'] == 1 - accuracy
    # One device: no KVStore object at all (GluonCV's behaviour); two: the 'device' one.
    kvstore = trainers[0]._kvstore
    assert (kvstore is None) if not gpus else (kvstore.type == 'device')


def test_mixup_mixes_each_device_slice_with_its_own_reverse():
    args = train.parse_args(SMALL + ['--mixup'])
    rng = np.random.RandomState(3)
    prepare = train._batch_preparation(args, 1, None, rng)
    lam = mixup_lambda(np.random.RandomState(3), args.mixup_alpha, 0, args.num_epochs, 0)
    ctx = [mx.cpu(0), mx.cpu(1)]
    data = mx.nd.arange(8).reshape((8, 1, 1, 1))
    label = mx.nd.array([0, 1, 2, 3, 0, 1, 2, 3])
    xs, ys = split_batch(data, label, ctx)
    mixed, targets, soft = prepare(xs, ys)
    assert soft is None and [x.context for x in mixed] == ctx
    for x, y, m, t in zip(xs, ys, mixed, targets):
        np.testing.assert_allclose(m.asnumpy(), lam * x.asnumpy() + (1 - lam) *
                                   x.asnumpy()[::-1], rtol=1e-6)
        np.testing.assert_allclose(t.asnumpy(), training_targets(y, 4, 0.0, lam).asnumpy(),
                                   rtol=1e-6)


def test_running_statistics_are_averaged_over_the_devices(unfused):
    ctx = [mx.cpu(0), mx.cpu(1)]
    net = get_model('cifar_resnet8_v2', classes=10, act_type='ChaATAC')
    net.initialize(mx.init.MSRAPrelu(), ctx=ctx)
    # MXNet 1.9 updates the running statistics in BatchNorm's backward pass.
    with mx.autograd.record():
        losses = [net(mx.nd.random.uniform(0, scale, (4, 3, 32, 32), ctx=device)).sum()
                  for scale, device in zip((1, 5), ctx)]
    mx.autograd.backward(losses)
    stats = net.collect_params('.*running_mean|.*running_var').values()
    before = {p.name: [d.asnumpy() for d in p.list_data()] for p in stats}
    assert any(not np.array_equal(*copies) for copies in before.values())
    assert average_running_stats(net) == len(before)
    for param in stats:
        first, second = (d.asnumpy() for d in param.list_data())
        assert np.array_equal(first, second)
        np.testing.assert_allclose(first, np.mean(before[param.name], axis=0), rtol=1e-6)
    x = mx.nd.random.uniform(shape=(2, 3, 32, 32))
    outputs = [net(x.as_in_context(device)).asnumpy() for device in ctx]
    assert np.array_equal(*outputs)


def test_cifar_best_params_reproduce_the_logged_score_on_two_devices(tmp_path, tiny_cifar,
                                                                     unfused):
    flags = ['--dataset', 'cifar10', '--data-dir', tiny_cifar(), '--blocks', '1',
             '--batch-size', '16', '--no-progress', '--mode', 'hybrid']
    result = cifar.main(flags + ['--save-dir', str(tmp_path), '--num-epochs', '2',
                                 '--gpus', '0,1'])
    logged = max(r['val_acc'] for r in result['records'])
    best = str(tmp_path / 'best.params')
    for gpus in ('0,1', ''):
        again = cifar.main(flags + ['--save-dir', str(tmp_path / 'eval'), '--eval-only',
                                    '--resume-from', best, '--gpus', gpus])
        assert again['val_acc'] == logged == result['best_val_acc']


@pytest.mark.slow
def test_imagenet_best_params_reproduce_the_logged_score_on_two_devices(
        tmp_path, tiny_imagenet, unfused):
    result = train.run(imagenet_args(tiny_imagenet, tmp_path, '--num-epochs', '2',
                                     '--gpus', '0,1'))
    logged = [r for r in result['records'] if r['epoch'] == result['best_epoch']][0]
    best = [f for f in os.listdir(tmp_path) if f.endswith('-best.params')]
    assert len(best) == 1
    net = get_model('resnet18_v1b', classes=4, input_size=32)
    load_parameters(net, str(tmp_path / best[0]))
    scored = evaluate(net, val_batches(os.path.join(tiny_imagenet, 'val'), 4, 32, 0.875, 0),
                      mx.cpu())
    assert scored['top1_err'] == logged['val_top1_err']
    assert scored['top5_err'] == logged['val_top5_err']
