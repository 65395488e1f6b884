"""Data-parallel training across processes: the kvstore (MXNet's parameter server, or a
Horovod job), the start-up weight broadcast, each worker's share of the data, sums over
the workers, and a process exit a distributed job can see."""
import logging
import os
import sys
import traceback

import mxnet as mx

from ... import ops
from ...errors import UsageError

__all__ = ['HOROVOD_INSTALL', 'HorovodJob', 'create_kvstore', 'is_distributed',
           'broadcast_weights', 'batch_plan', 'exit_like_a_worker']

HOROVOD_INSTALL = ("HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 "
                   "HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 pip install "
                   "--no-build-isolation -c constraints.txt -e '.[horovod]' (after pip "
                   "install 'cmake<4' wheel; see docs/training.md)")


class HorovodJob(object):
    """What the recipes ask of a kvstore, for a job ``horovodrun`` started.

    MXNet 1.9's ``mx.kv.create('horovod')`` quietly returns a single-worker local store,
    so the job talks to ``horovod.mxnet`` itself.

    Parameters
    ----------
    hvd : module
        ``horovod.mxnet``, initialized here.

    Attributes
    ----------
    type : str
        ``'horovod'``.
    rank, num_workers, local_rank : int
        This process's rank, the processes of the job, and the rank on its machine.
    """

    type = 'horovod'

    def __init__(self, hvd):
        hvd.init()
        self.hvd = hvd
        self.rank, self.num_workers = hvd.rank(), hvd.size()
        self.local_rank = hvd.local_rank()

    def sum(self, values, name):
        """``values`` (numbers) added up over the workers, as a float64 NumPy array.

        ``name`` must be the same on every worker and unique among the sums in flight.
        """
        local = mx.nd.array(values, dtype='float64')
        return self.hvd.allreduce(local, op=self.hvd.Sum, name=name).asnumpy()

    def average_(self, arrays, prefix):
        """Replace each of ``arrays`` (one NDArray a name) by its mean over the workers."""
        for name, array in sorted(arrays.items()):
            self.hvd.allreduce_(array, op=self.hvd.Average, name=prefix + name)
        mx.nd.waitall()

    def _barrier(self):
        self.sum([0], 'barrier')


def is_distributed(kind):
    """Whether ``--kv-store kind`` spreads a run over processes."""
    return kind.startswith('dist') or kind == 'horovod'


def create_kvstore(kind):
    """``mx.kv.create(kind)``, or a :class:`HorovodJob` for ``'horovod'``; refuses dist
    kvstores outside a launched job.

    Raises
    ------
    UsageError
        ``dist_*`` without the DMLC environment ``gluon_atac.launch`` sets up, or
        ``horovod`` where Horovod is not installed.
    """
    if kind == 'horovod':
        # After horovod.mxnet is imported, MXNet can no longer load a custom-operator
        # library: mx.library.load kills the process with SIGFPE (MXNet 1.9.1, Horovod
        # 0.28.1). The ATAC units load the native gate's library on first use, so it is
        # loaded here, before Horovod.
        ops.load()
        try:
            import horovod.mxnet as hvd
        except ImportError as err:
            raise UsageError('--kv-store horovod needs Horovod built with MXNet (%s): %s'
                             % (err, HOROVOD_INSTALL)) from None
        return HorovodJob(hvd)
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
    waiting for the pulls and meeting at a barrier closes that window. Horovod's trainer
    broadcasts nothing: rank 0's weights (BatchNorm statistics included) are sent here.
    """
    if kv.type == 'horovod':
        params = {p.name: p for p in trainer._params}
        kv.hvd.broadcast_parameters(params, root_rank=0)
        mx.nd.waitall()
        return
    trainer._init_kvstore()
    trainer._init_params()
    mx.nd.waitall()
    kv._barrier()


def batch_plan(images, per_device, devices, kv, folders=True):
    """Batch and step accounting of one worker.

    Parameters
    ----------
    images : int
        Training images of the whole run.
    per_device : int
        Batch size per device.
    devices : int
        Devices of this worker.
    kv : mxnet.kvstore.KVStore or HorovodJob
    folders : bool, default True
        Whether the data are class folders (else record files).

    Returns
    -------
    dict
        ``batch`` (this worker's), ``global_batch``, ``steps`` per epoch, ``updates``
        (optimizer updates per epoch), ``step_batch`` (what ``trainer.step`` divides
        by), ``workers``; how the worker reads its data: ``read_batch`` batches of shard
        ``part`` of ``parts``, keeping slice ``replica`` (``(index, count)``) of each;
        and how it evaluates: ``val_batch`` batches, keeping slice ``val_replica``;
        ``job_sums``: whether the epoch's training sums are added up over the workers.
    """
    batch = per_device * devices
    workers = kv.num_workers
    global_batch = batch * workers
    steps = max(1, images // global_batch)
    # dist_async applies every worker's push as an update of its own, averaged over that
    # worker's batch; the synchronous kvstores make one update of the global batch a step.
    asynchronous = kv.type == 'dist_async'
    plan = dict(batch=batch, global_batch=global_batch, images=images, steps=steps,
                updates=steps * workers if asynchronous else steps,
                step_batch=batch if asynchronous else global_batch, workers=workers,
                read_batch=batch, parts=workers, part=kv.rank, replica=(0, 1),
                val_batch=batch, val_replica=(0, 1), job_sums=False)
    if kv.type == 'horovod':
        # Horovod's trainer divides by the worker count itself. Every process scores its
        # slice of the validation batches, and from class folders reads its slice of the
        # global batch a one-process run on `workers` devices reads: the same images,
        # augmented alike (record files are sharded as under dist_sync instead: slicing
        # them would decode every image in every process).
        plan.update(step_batch=batch, val_batch=global_batch,
                    val_replica=(kv.rank, workers), job_sums=True)
        if folders:
            plan.update(read_batch=global_batch, parts=1, part=0,
                        replica=(kv.rank, workers))
    return plan


def exit_like_a_worker(main, argv):
    """Run ``main(argv)``; in a distributed worker, end the process at once on failure.

    A failing worker must not exit normally: that would wait in MXNet's kvstore shutdown
    barrier (or Horovod's) for peers that are themselves waiting for it, and the launcher
    (``gluon_atac.launch`` or ``horovodrun``) could never see the failure.
    """
    if os.environ.get('DMLC_ROLE') != 'worker' and 'HOROVOD_RANK' not in os.environ:
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
