# curata — two commands on a fresh machine:
#   make demo   create .venv, build, run the post-processing demo on generated data
#   make test   create .venv, build, run the whole test suite
# Other targets: build, bench SUITE=boxes, gpu-check, cuda-sim, clean.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.deps-stamp
BUILD_STAMP := $(VENV)/.build-stamp
# torch is pinned to the CPU wheel available offline; it is a test dependency, never a runtime one.
TEST_DEPS := pytest hypothesis scipy torch==2.13.0 pycocotools==2.0.11 faster-coco-eval==1.8.0 ensemble-boxes==1.0.9 faiss-cpu==1.15.1 scikit-learn==1.9.1
BUILD_DEPS := scikit-build-core pybind11 numpy cmake ninja
SOURCES := $(shell find cpp cuda python -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' -o -name '*.py' \) 2>/dev/null) CMakeLists.txt pyproject.toml
SUITE ?= boxes

.PHONY: demo test build bench gpu-check cuda-sim clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(BUILD_DEPS) $(TEST_DEPS)
	touch $@

# Editable install with a fixed build dir: a rebuild recompiles only what changed.
$(BUILD_STAMP): $(STAMP) $(SOURCES)
	$(PIP) install -q --no-build-isolation --no-deps -e . \
		-Cbuild-dir=build/dev -Ccmake.define.CURATA_CUDA=$${CURATA_CUDA:-AUTO}
	touch $@

build: $(BUILD_STAMP)

demo: build
	$(PY) -m curata.demo

test: build
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: build
	$(PY) -m benchmarks.run $(SUITE)

# On a machine with a GPU: CUDA build, GPU tests that may not skip, compute-sanitizer, GPU benchmarks.
gpu-check: venv
	CURATA_CUDA=ON $(MAKE) build
	CURATA_REQUIRE_GPU=1 $(PY) -m pytest -q -p no:cacheprovider tests
	compute-sanitizer --tool memcheck --error-exitcode 1 $(PY) -m pytest -q -p no:cacheprovider -m gpu tests/gpu
	$(PY) -m benchmarks.run boxes --device cuda

# No GPU needed: the CUDA kernels' source run on a host simulation against the CPU library and
# through the GPU tests (tools/cuda_sim/README.md says what this can and cannot show).
cuda-sim: build
	tools/cuda_sim/build.sh && build/cuda_sim/driver 60
	PYMODULE=1 tools/cuda_sim/build.sh && $(PY) tools/cuda_sim/run_gpu_tests.py

clean:
	rm -rf build $(VENV) *.egg-info
