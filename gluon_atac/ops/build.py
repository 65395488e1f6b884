"""Compile ``atac_gate.cc`` into a cached shared library and load it into MXNet once."""
import ctypes
import fcntl
import hashlib
import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
import warnings

import mxnet as mx

__all__ = ['load', 'library_path', 'build_library', 'compiler_flags', 'is_valid_library',
           'library_isa', 'choose', 'FAST_ISAS', 'MODE_PROBE_SPAN', 'MODE_THRESHOLD']

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'atac_gate.cc')

# The mode probe (ChaATAC._mode_probe) is a BatchNorm of [0, MODE_PROBE_SPAN]. Batch
# statistics normalize it to [-1, 1], a spread of 2; running statistics to a spread of
# MODE_PROBE_SPAN / sqrt(var + eps), at least MODE_THRESHOLD unless the running variance
# exceeds 2^76. The library compares the spread with MODE_THRESHOLD, which it gets from
# here as a -D define (it has no value of its own and does not compile without one), so
# the probe and the test on it are defined in this one place, and the cache key covers both.
MODE_PROBE_SPAN = 2.0 ** 40
MODE_THRESHOLD = 4.0

# -march=native: the library is built where it runs (the cache key includes the CPU).
FLAGS = ['-O3', '-march=native', '-std=c++17', '-fPIC', '-shared', '-fopenmp',
         '-DATAC_MODE_THRESHOLD=%r' % MODE_THRESHOLD]

# Instruction sets whose build of the gate beats MXNet's Gluon graph of the same unit (on
# oneDNN) in inference and training, measured with benchmarks/throughput.py --builds
# (docs/speed.md). A build for another one ("generic": no AVX2 and FMA, its GEMMs and
# sigmoid on 128-bit halves without fused multiply-adds) is not loaded: the graph runs.
FAST_ISAS = ('avx512', 'avx2')

_lock = threading.Lock()
_state = {'tried': False, 'path': None}
_log = logging.getLogger(__name__)


def compiler_flags():
    """The compiler flags of the build: :data:`FLAGS`, then ``$GLUON_ATAC_CXXFLAGS``.

    The extra flags come last, so they override the defaults (``-mno-avx512f`` builds
    without AVX-512 on a machine that has it).

    Returns
    -------
    list of str
    """
    extra = os.environ.get('GLUON_ATAC_CXXFLAGS', '')
    try:
        return FLAGS + shlex.split(extra)
    except ValueError as err:
        raise ValueError('GLUON_ATAC_CXXFLAGS=%r is not a list of flags (%s)' % (extra, err))


def _mxnet_dir():
    return os.path.dirname(os.path.abspath(mx.__file__))


def _cpu_signature():
    """Model name and flags of the CPU, so a cache shared across machines stays correct."""
    try:
        with open('/proc/cpuinfo') as f:
            lines = [l for l in f if l.startswith(('model name', 'flags'))]
        return ''.join(sorted(set(lines)))
    except OSError:
        return platform.processor()


def _cache_dir():
    return os.environ.get('GLUON_ATAC_CACHE') or os.path.join(
        os.path.expanduser('~'), '.cache', 'gluon_atac')


def library_path():
    """Where the library for this source, mxnet, compiler flags and CPU lives (or would).

    Returns
    -------
    str
        A path in ``$GLUON_ATAC_CACHE`` (default ``~/.cache/gluon_atac``).
    """
    digest = hashlib.sha256()
    mxdir = _mxnet_dir()
    for path in (SOURCE, os.path.join(mxdir, 'src', 'lib_api.cc'),
                 os.path.join(mxdir, 'include', 'mxnet', 'lib_api.h')):
        with open(path, 'rb') as f:
            digest.update(f.read())
    digest.update(' '.join(compiler_flags() + [mx.__version__, _cpu_signature()]).encode())
    return os.path.join(_cache_dir(), 'libatac_gate-%s.so' % digest.hexdigest()[:16])


def _record_path(path):
    """The build record next to a library: its checksum and the flags it was built with."""
    return path + '.json'


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def is_valid_library(path):
    """Whether ``path`` holds the bytes a successful :func:`build_library` wrote there.

    Loading a truncated shared object kills the process (SIGBUS) instead of raising, so
    a library is loaded only when its checksum matches the record its build wrote last.

    Parameters
    ----------
    path : str
        A library path, e.g. :func:`library_path`.

    Returns
    -------
    bool
    """
    try:
        with open(_record_path(path)) as f:
            return json.load(f)['sha256'] == _sha256(path)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _publish(tmp, path, text):
    """Move ``tmp`` to ``path`` and write ``text`` to ``path``'s build record, both by
    rename, so that readers see whole files only."""
    fd, tmp_record = tempfile.mkstemp(suffix='.json', dir=os.path.dirname(path))
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, path)
    os.replace(tmp_record, _record_path(path))


def build_library(path=None, compiler=None, source=SOURCE, flags=None):
    """Compile the fused-gate library to ``path`` (default :func:`library_path`).

    The build writes to a temporary file, renames it and then writes its build record
    (checksum and flags), so no process ever loads a half-written library.

    Parameters
    ----------
    path : str, optional
        Destination of the library.
    compiler : str, optional
        C++ compiler; default ``$CXX`` or ``g++``.
    source : str, optional
        The operator's C++ source; default this package's (another one is a variant under
        test, see ``benchmarks/gate_ab.py``).
    flags : list of str, optional
        Compiler flags; default :func:`compiler_flags`.

    Returns
    -------
    str
        Path of the compiled library.

    Raises
    ------
    RuntimeError
        If no compiler is found or it fails (its first error is in the message).
    """
    path = path or library_path()
    compiler = compiler or os.environ.get('CXX') or shutil.which('g++')
    if not compiler:
        raise RuntimeError('no C++ compiler (g++) found to build the fused ATAC gate')
    mxdir = _mxnet_dir()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.so', dir=os.path.dirname(path))
    os.close(fd)
    flags = compiler_flags() if flags is None else flags
    cmd = [compiler] + flags + [
        '-I', os.path.join(mxdir, 'include', 'mxnet'), '-I', os.path.join(mxdir, 'include'),
        source, os.path.join(mxdir, 'src', 'lib_api.cc'), '-o', tmp]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            # one line for the warning: the first error, which the rest follows from
            lines = [l.strip() for l in proc.stderr.splitlines() if l.strip()]
            errors = [l for l in lines if 'error' in l] or lines[-1:]
            raise RuntimeError('building the fused ATAC gate failed (%s exited with %d)%s'
                               % (compiler, proc.returncode,
                                  ': ' + errors[0] if errors else ''))
        _publish(tmp, path, json.dumps({'sha256': _sha256(tmp), 'flags': flags}))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _ensure_built(path):
    """Build the library at ``path`` unless a valid one is there, one process at a time.

    Processes that start together on an empty cache wait for the first one's build (an
    exclusive lock on a file next to the library) and then load its result, instead of
    compiling side by side.
    """
    if is_valid_library(path):
        return
    cache = os.path.dirname(path)
    try:
        os.makedirs(cache, exist_ok=True)
        lock = open(path + '.lock', 'a')
    except OSError as err:
        raise RuntimeError('cannot write the library cache %s (%s); set GLUON_ATAC_CACHE '
                           'to a writable directory' % (cache, err.strerror or err))
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_valid_library(path):  # another process built it while this one waited
            return
        if os.path.exists(path):
            warnings.warn('cached fused ATAC gate %s is damaged or foreign (its checksum does '
                          'not match its build record): rebuilding it' % path)
        build_library(path)


def library_isa(path):
    """The instruction set a built library vectorizes for.

    Parameters
    ----------
    path : str
        A library written by :func:`build_library`.

    Returns
    -------
    str
        ``'avx512'``, ``'avx2'`` (with FMA) or ``'generic'``: what the compiler flags
        enabled, which on ``-march=native`` is what the CPU has.
    """
    # ctypes only maps the file: the operator is registered by mx.library.load alone.
    function = ctypes.CDLL(os.path.abspath(path)).atac_gate_isa
    function.restype = ctypes.c_char_p
    return function().decode()


def choose(isa, setting='1'):
    """Whether the native gate runs for a library built for ``isa``, and why.

    Parameters
    ----------
    isa : str
        From :func:`library_isa`.
    setting : str, default '1'
        ``$GLUON_ATAC_FUSED``: ``'0'`` never, ``'force'`` always, anything else when
        ``isa`` is one of :data:`FAST_ISAS`.

    Returns
    -------
    (bool, str)
        The choice and the sentence :func:`load` logs about it.
    """
    if setting == 'force':
        return True, ('fused ATAC gate: native operator (%s build, forced by '
                      'GLUON_ATAC_FUSED=force)' % isa)
    if isa in FAST_ISAS:
        return True, 'fused ATAC gate: native operator (%s build)' % isa
    return False, ('fused ATAC gate: Gluon graph, the %s build of the native operator is '
                   'slower than it on this CPU (GLUON_ATAC_FUSED=force uses it anyway)' % isa)


def load():
    """Build (if needed) and load the library once per process.

    The library is built for this CPU's instruction set; :func:`choose` decides whether
    it is loaded, and the choice is logged once (logger ``gluon_atac.ops.build``, level
    INFO).

    Returns
    -------
    str or None
        The loaded library's path, or ``None`` when the fused gate is unavailable
        (disabled with ``GLUON_ATAC_FUSED=0``, no compiler, an unwritable cache, build or
        load error: a warning says why) or not chosen for this CPU's instruction set
        (see :data:`FAST_ISAS`); ATAC then runs as the plain Gluon graph.
    """
    with _lock:
        if _state['tried']:
            return _state['path']
        _state['tried'] = True
        setting = os.environ.get('GLUON_ATAC_FUSED', '1')
        if setting == '0':
            return None
        try:
            path = library_path()
            _ensure_built(path)
            chosen, reason = choose(library_isa(path), setting)
            _log.info(reason)
            if chosen:
                mx.library.load(path, verbose=False)
                _state['path'] = path
        except Exception as err:  # any failure means: use the Gluon graph
            warnings.warn('fused ATAC gate unavailable, using the Gluon graph: %s' % err)
        return _state['path']
