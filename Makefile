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
	touch $(STAMP)

# One pytest worker per core, each operator on one thread: two threads per operator on a
# busy core spin in OpenMP barriers and run ten times slower. A test module runs on one
# worker, so its module fixtures (the native-gate compile, for one) are built once.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(NPROC) --dist loadfile tests

demo: $(STAMP)
	$(PY) -m gluon_atac.demo --out runs/demo

bench: $(STAMP)
	$(PY) benchmarks/throughput.py --act-types relu,chaatac,chaatac-gluon
	$(PY) benchmarks/deterministic_cost.py --rounds 3

clean:
	rm -rf $(VENV) runs build *.egg-info
