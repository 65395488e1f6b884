# Two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# getconf, not nproc: nproc honours OMP_NUM_THREADS, which would cut the pytest workers.
NPROC := $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
export OMP_NUM_THREADS ?= $(NPROC)
export MXNET_SUBGRAPH_VERBOSE ?= 0

.PHONY: venv test demo bench clean

venv: $(STAMP)

$(STAMP): setup.py constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] <= (3, 11), "gluon_atac needs Python <= 3.11 (gluoncv imports distutils)"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,onnx]'
	@$(MAKE) --no-print-directory horovod
	touch $(STAMP)

# The horovod extra compiles Horovod against the installed MXNet (Gloo only, no MPI), a
# few minutes on 2 cores. Where that cannot be done, one line says why and lands in
# HOROVOD_OFF, whose text the Horovod tests skip with; where it was done they never skip.
HOROVOD_OFF := $(VENV)/horovod-unavailable
HOROVOD_LOG := $(VENV)/horovod-build.log
HOROVOD_FLAGS := HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
	HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1

.PHONY: horovod
horovod:
	@rm -f $(HOROVOD_OFF)
	@if ! command -v c++ >/dev/null 2>&1; then \
		echo "make venv: Horovod not installed: no C++ compiler (c++) to build it; --kv-store horovod and its tests are off" > $(HOROVOD_OFF); \
	elif ! { $(PY) -m pip install -q 'cmake<4' wheel && \
		PATH="$(abspath $(VENV))/bin:$$PATH" $(HOROVOD_FLAGS) $(PY) -m pip install \
		--no-build-isolation -c constraints.txt -e '.[horovod]'; } > $(HOROVOD_LOG) 2>&1; then \
		echo "make venv: Horovod not installed: its build failed (see $(HOROVOD_LOG)); --kv-store horovod and its tests are off" > $(HOROVOD_OFF); \
	fi
	@if [ -f $(HOROVOD_OFF) ]; then cat $(HOROVOD_OFF); fi

# One pytest worker per core, each operator on one thread: two threads per operator on a
# busy core spin in OpenMP barriers and run ten times slower. A test module runs on one
# worker, so its module fixtures (the native-gate compile, for one) are built once. A
# worker that dies (a crash in native code) is not replaced: the run fails with the test it
# was running named, where a replacement worker once left make test waiting for good.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(NPROC) --dist loadfile --max-worker-restart=0 tests

demo: $(STAMP)
	$(PY) -m gluon_atac.demo --out runs/demo

bench: $(STAMP)
	$(PY) benchmarks/throughput.py --act-types relu,chaatac,chaatac-gluon
	$(PY) benchmarks/deterministic_cost.py --rounds 3

clean:
	rm -rf $(VENV) runs build *.egg-info
