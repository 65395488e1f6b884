"""Native operator: the fused ATAC gate (``atac_gate``), compiled on first use and loaded
into MXNet.

The C++ source next to this file is built against the ``lib_api.h`` that the mxnet wheel
ships, with the machine's ``g++``, into a cache directory (``$GLUON_ATAC_CACHE`` or
``~/.cache/gluon_atac``) keyed by the source, the compiler flags, the mxnet version and the
CPU, and loaded with :func:`mxnet.library.load`. ``$GLUON_ATAC_CXXFLAGS`` appends compiler
flags (e.g. ``-mno-avx512f``). Each build leaves a record of its checksum next to the
library; a cached library that does not match it (truncated, replaced) is rebuilt, and
processes starting together on an empty cache share one build. When anything fails (no
compiler, an unwritable cache, ...), or ``GLUON_ATAC_FUSED=0`` is set, :func:`load`
returns ``None`` after a warning and callers keep the plain Gluon graph. It does the same,
logging why once, for a build whose instruction set is not in :data:`FAST_ISAS` (no AVX2
and FMA), where the graph on oneDNN is faster; ``GLUON_ATAC_FUSED=force`` loads it anyway.
"""
from .build import (load, library_path, build_library, compiler_flags, is_valid_library,
                    library_isa, choose, FAST_ISAS,
                    MODE_PROBE_SPAN, MODE_THRESHOLD)

__all__ = ['load', 'library_path', 'build_library', 'compiler_flags', 'is_valid_library',
           'library_isa', 'choose', 'FAST_ISAS',
           'MODE_PROBE_SPAN', 'MODE_THRESHOLD']
