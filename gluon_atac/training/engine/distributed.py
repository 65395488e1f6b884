"""Data-parallel training across processes: the kvstore, the start-up weight broadcast,
each worker's share of the data, and a process exit a distributed job can see."""
import logging
import os
import sys
import traceback

import mxnet as mx

from ...errors import UsageError

__all__ = ['create_kvstore', 'broadcast_weights', 'batch_plan', 'exit_like_a_worker']


def create_kvstore(kind):
    """``mx.kv.create(kind)``, refusing dist kvstores outside a launched job.

    Raises
    ------
    UsageError
        ``dist_*`` without the DMLC environment ``gluon_atac.launch`` sets up.
    """
    if kind.startswith('dist') and 'DMLC_ROLE' not in os.environ:
        raise UsageError('--kv-store %s needs the DMLC environment: start the workers with '
                         'python -m gluon_atac.launch -n N -s S -- python train_imagenet.py '
                         '...' % kind)
    return mx.kv.create(kind)


def broadcast_weights(trainer, kv):
    """Give every worker rank 0's weights before anyone pushes a gradient.

    MXNet 1.9's Trainer broadcasts the weights inside its first step, and nothing orders
    that pull before the first gradient push to the same key: a late pull returns the
    summed gradients instead (about one two-worker run in six). Broadcasting here,
    waiting for the pulls and meeting at a barrier closes that window.
    """
    trainer._init_kvstore()
    trainer._init_params()
    mx.nd.waitall()
    kv._barrier()


def batch_plan(images, per_device, devices, kv):
    """Batch and step accounting of one worker.

    Parameters
    ----------
    images : int
        Training images of the whole run.
    per_device : int
        Batch size per device.
    devices : int
        Devices of this worker.
    kv : mxnet.kvstore.KVStore

    Returns
    -------
    dict
        ``batch`` (this worker's), ``global_batch``, ``steps`` per epoch, ``updates``
        (optimizer updates per epoch), ``step_batch`` (what ``trainer.step`` divides
        by), ``parts`` and ``part`` (the worker's shard of the data).
    """
    batch = per_device * devices
    global_batch = batch * kv.num_workers
    steps = max(1, images // global_batch)
    # dist_async applies every worker's push as an update of its own, averaged over that
    # worker's batch; the synchronous kvstores make one update of the global batch a step.
    asynchronous = kv.type == 'dist_async'
    return dict(batch=batch, global_batch=global_batch, images=images, steps=steps,
                updates=steps * kv.num_workers if asynchronous else steps,
                step_batch=batch if asynchronous else global_batch,
                parts=kv.num_workers, part=kv.rank)


def exit_like_a_worker(main, argv):
    """Run ``main(argv)``; in a distributed worker, end the process at once on failure.

    A failing worker must not exit normally: that would wait in MXNet's kvstore shutdown
    barrier for peers that are themselves waiting for it, and the launcher could never
    see the failure.
    """
    if os.environ.get('DMLC_ROLE') != 'worker':
        return main(argv)
    try:
        return main(argv)
    except SystemExit as stop:
        if not stop.code:
            raise
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 -- any failure must end the process
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
