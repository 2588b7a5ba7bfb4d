# curata — two commands on a fresh machine:
#   make demo   create .venv, build, run the post-processing demo on generated data
#   make test   create .venv, build, run the whole test suite
# Other targets: build, bench SUITE=boxes [BENCH_ARGS=--quick], bench-venv, gpu-check, clean.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.deps-stamp
BUILD_STAMP := $(VENV)/.build-stamp
# torch is pinned to the CPU wheel available offline; it is a test dependency, never a runtime one.
TEST_DEPS := pytest hypothesis scipy torch==2.13.0
BUILD_DEPS := scikit-build-core pybind11 numpy cmake ninja
SOURCES := $(shell find cpp cuda python -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' -o -name '*.py' \) 2>/dev/null) CMakeLists.txt pyproject.toml
SUITE ?= boxes
BENCH_ARGS ?=
# Benchmarks get their own venv: the peers (torchvision needs a matching torch, ~5.5 GB with its
# CUDA libraries) must never leak into the test venv. Own build dir, so the two never share objects.
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.deps-stamp
BENCH_BUILD_STAMP := $(BENCH_VENV)/.build-stamp
BENCH_DEPS := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test build bench bench-venv gpu-check clean venv

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

$(BENCH_STAMP): pyproject.toml Makefile
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	$(BENCH_PY) -m pip install -q $(BUILD_DEPS) $(BENCH_DEPS)
	touch $@

$(BENCH_BUILD_STAMP): $(BENCH_STAMP) $(SOURCES)
	$(BENCH_PY) -m pip install -q --no-build-isolation --no-deps -e . \
		-Cbuild-dir=build/bench -Ccmake.define.CURATA_CUDA=$${CURATA_CUDA:-AUTO}
	touch $@

bench-venv: $(BENCH_BUILD_STAMP)

# make bench SUITE=boxes BENCH_ARGS="--quick --device cuda"
bench: bench-venv
	$(BENCH_PY) -m benchmarks.run $(SUITE) $(BENCH_ARGS)

# On a machine with a GPU: CUDA build, GPU tests that may not skip, compute-sanitizer, GPU benchmarks.
gpu-check: venv
	CURATA_CUDA=ON $(MAKE) build
	CURATA_REQUIRE_GPU=1 $(PY) -m pytest -q -p no:cacheprovider tests
	compute-sanitizer --tool memcheck --error-exitcode 1 $(PY) -m pytest -q -p no:cacheprovider -m gpu tests/gpu
	CURATA_CUDA=ON $(MAKE) bench SUITE=boxes BENCH_ARGS="--device cuda"

clean:
	rm -rf build $(VENV) $(BENCH_VENV) *.egg-info
