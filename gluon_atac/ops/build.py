"""Compile ``atac_gate.cc`` into a cached shared library and load it into MXNet once."""
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings

import mxnet as mx

__all__ = ['load', 'library_path', 'build_library']

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'atac_gate.cc')
# -march=native: the library is built where it runs (the cache key includes the CPU).
FLAGS = ['-O3', '-march=native', '-std=c++17', '-fPIC', '-shared', '-fopenmp']

_lock = threading.Lock()
_state = {'tried': False, 'path': None}


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
    """Where the library for this source, mxnet, compiler flags and CPU lives (or would)."""
    digest = hashlib.sha256()
    mxdir = _mxnet_dir()
    for path in (SOURCE, os.path.join(mxdir, 'src', 'lib_api.cc'),
                 os.path.join(mxdir, 'include', 'mxnet', 'lib_api.h')):
        with open(path, 'rb') as f:
            digest.update(f.read())
    digest.update(' '.join(FLAGS + [mx.__version__, _cpu_signature()]).encode())
    return os.path.join(_cache_dir(), 'libatac_gate-%s.so' % digest.hexdigest()[:16])


def build_library(path=None, compiler=None):
    """Compile the fused-gate library to ``path`` (default :func:`library_path`).

    The build writes to a temporary file first and renames it, so concurrent builds in
    several processes never load a half-written library.

    Returns
    -------
    str
        Path of the compiled library.

    Raises
    ------
    RuntimeError
        If no compiler is found or it fails (its output is in the message).
    """
    path = path or library_path()
    compiler = compiler or os.environ.get('CXX') or shutil.which('g++')
    if not compiler:
        raise RuntimeError('no C++ compiler (g++) found to build the fused ATAC gate')
    mxdir = _mxnet_dir()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.so', dir=os.path.dirname(path))
    os.close(fd)
    cmd = [compiler] + FLAGS + [
        '-I', os.path.join(mxdir, 'include', 'mxnet'), '-I', os.path.join(mxdir, 'include'),
        SOURCE, os.path.join(mxdir, 'src', 'lib_api.cc'), '-o', tmp]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError('building the fused ATAC gate failed:\n%s\n%s'
                               % (' '.join(cmd), proc.stderr[-4000:]))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load():
    """Build (if needed) and load the library once per process.

    Returns
    -------
    str or None
        The loaded library's path, or ``None`` when the fused gate is unavailable
        (disabled with ``GLUON_ATAC_FUSED=0``, no compiler, build or load error: a warning
        says why); ATAC then runs as the plain Gluon graph.
    """
    with _lock:
        if _state['tried']:
            return _state['path']
        _state['tried'] = True
        if os.environ.get('GLUON_ATAC_FUSED', '1') == '0':
            return None
        try:
            path = library_path()
            if not os.path.exists(path):
                build_library(path)
            mx.library.load(path, verbose=False)
            _state['path'] = path
        except Exception as err:  # any failure means: use the Gluon graph
            warnings.warn('fused ATAC gate unavailable, using the Gluon graph: %s' % err)
        return _state['path']
