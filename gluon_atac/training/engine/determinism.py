"""``--deterministic``: bit-identical runs from MXNet's synchronous engine on one thread.

``--seed`` fixes every random draw, but MXNet's default threaded engine still lets the
floating-point results of two identical runs drift apart (measured: the training loss
differs in the 8th digit at the second epoch, and accuracies by points a few epochs later).
The naive engine runs operators one at a time in program order, and one OpenMP thread
fixes the order of the sums inside each operator; together they make a CPU run a function
of its arguments alone. The engine and the thread count are read when MXNet starts, so a
process that is not yet set up this way starts itself again with them.
"""
import os
import sys

import mxnet as mx

from ...errors import UsageError

__all__ = ['DETERMINISTIC_ENV', 'is_deterministic_process', 'make_deterministic']

DETERMINISTIC_ENV = {
    'MXNET_ENGINE_TYPE': 'NaiveEngine',
    'OMP_NUM_THREADS': '1',
    'MXNET_CPU_WORKER_NTHREADS': '1',
    # GPU builds: only deterministic cuDNN algorithms, chosen without timing them.
    'MXNET_ENFORCE_DETERMINISM': '1',
    'MXNET_CUDNN_AUTOTUNE_DEFAULT': '0',
    'PYTHONHASHSEED': '0',
}


def is_deterministic_process():
    """Whether this process started with every variable of :data:`DETERMINISTIC_ENV`."""
    return all(os.environ.get(k) == v for k, v in DETERMINISTIC_ENV.items())


def _start_engine_quietly():
    # MXNet announces a non-default engine on stderr when it starts it (at the latest when
    # the process exits), which would follow a one-line error; the run logs it instead.
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(devnull, 2)
    try:
        mx.nd.zeros((1,)).wait_to_read()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _own_command():
    # Re-run the way this process was run: a script path, or ``-m package.module``.
    spec = getattr(sys.modules.get('__main__'), '__spec__', None)
    if spec is not None and spec.name:
        return [sys.executable, '-m', spec.name] + sys.argv[1:]
    return [sys.executable] + sys.argv


def make_deterministic(restart):
    """Ensure this process runs deterministically, restarting it when it has to.

    Parameters
    ----------
    restart : bool
        ``True`` when the process runs the command line in ``sys.argv`` (a training
        script): it is replaced by the same command under :data:`DETERMINISTIC_ENV`.
        ``False`` for a call from Python with its own arguments, which cannot be
        restarted.

    Raises
    ------
    UsageError
        If ``restart`` is false and the process did not start deterministic.
    """
    if is_deterministic_process():
        _start_engine_quietly()
        return
    if not restart:
        raise UsageError('--deterministic must be set before MXNet starts: run the script '
                         'from the shell, or start Python with %s'
                         % ' '.join('%s=%s' % kv for kv in sorted(DETERMINISTIC_ENV.items())))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, _own_command(), dict(os.environ, **DETERMINISTIC_ENV))
