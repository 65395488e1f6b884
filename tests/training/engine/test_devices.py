"""Batches per device and their split over the devices."""
import logging

import mxnet as mx
import pytest

from gluon_atac.errors import UsageError
from gluon_atac.training.engine.devices import device_of_process, fitting_batch_size, split_batch


def test_small_data_lowers_the_batch_per_device():
    logger = logging.getLogger('test')
    assert fitting_batch_size(8, 100, 2, logger) == 8
    assert fitting_batch_size(128, 24, 2, logger) == 12
    assert fitting_batch_size(16, 40, 1, logger, workers=2) == 16
    with pytest.raises(UsageError, match='cannot give each of 2 workers x 4 devices'):
        fitting_batch_size(8, 7, 4, logger, workers=2)


def test_split_batch_uses_no_more_devices_than_samples():
    ctx = [mx.cpu(0), mx.cpu(1), mx.cpu(2)]
    xs, ys = split_batch(mx.nd.arange(2), mx.nd.arange(2), ctx)
    assert [x.context for x in xs] == ctx[:2] and [y.shape for y in ys] == [(1,), (1,)]
    xs, _ = split_batch(mx.nd.arange(7), mx.nd.arange(7), ctx)
    assert [x.shape[0] for x in xs] == [3, 2, 2]


def test_a_process_of_a_horovod_job_gets_its_local_rank_device():
    gpus = [mx.gpu(i) for i in range(4)]
    assert device_of_process(gpus, 2) == [mx.gpu(2)]
    # CPU contexts stand in for absent GPUs: every process of the machine uses cpu(0).
    assert device_of_process([mx.cpu(0), mx.cpu(1)], 1) == [mx.cpu(0)]
    with pytest.raises(UsageError, match='process 4 of this machine has no GPU'):
        device_of_process(gpus, 4)
