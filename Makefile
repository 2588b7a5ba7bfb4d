# curata — two commands on a fresh machine:
#   make demo   create .venv, build, run the data-loop demo (post-processing, curation, drift, next batch to label) on generated data
#   make test   create .venv, build, run the whole test suite
# Other targets: build, bench SUITE=boxes|ensemble|coco|drift|search|curation [BENCH_ARGS=--quick], bench-venv, gpu-check, gpu-sanitize, cuda-sim, clean.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.deps-stamp
BUILD_STAMP := $(VENV)/.build-stamp
# torch is pinned to the CPU wheel available offline; it is a test dependency, never a runtime one.
TEST_DEPS := pytest hypothesis scipy torch==2.13.0 pycocotools==2.0.11 faster-coco-eval==1.8.0 ensemble-boxes==1.0.9 faiss-cpu==1.15.1 scikit-learn==1.9.1 pyarrow==26.0.1 'cleanlab[datalab]==2.9.0'
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
# Drift peers: nannyml only (plus statsmodels, which `import nannyml` needs but nannyml 0.13.1 does not
# declare). alibi-detect 0.13.0 (newest) requires numpy<2 and pandas<3, and evidently 0.7.23 fails to
# import with pandas 3 (benchmarks/drift.py, docs/benchmarks.md): both left out.
BENCH_DEPS := torch==2.14.1 torchvision==0.29.1 faiss-cpu==1.15.1 ensemble-boxes==1.0.9 pycocotools==2.0.11 faster-coco-eval==1.8.0 scipy scikit-learn==1.9.1 'cleanlab[datalab]==2.9.0' ultralytics==8.4.190 nannyml==0.13.1 statsmodels==0.15.0

.PHONY: demo test build bench bench-venv gpu-build gpu-check gpu-sanitize cuda-sim clean venv

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

# On a machine with a GPU. GPU machines have no package index, so this uses the system python there
# (GPU_PY), which holds CUDA torch, CuPy, pytest and the build tools, instead of .venv. The CPU-only
# peers (pycocotools, ensemble-boxes, ...) may be missing there: only the GPU tests and the CUDA
# module's tests run; the CPU suite is CI's job.
GPU_PY ?= python3
GPU_ARCHS ?= 90
GPU_TESTS := tests/gpu tests/test_cuda_module.py
# compute-sanitizer watches curata's own kernels: the tests that launch them (boxes). The torch
# paths (search, k-means, k-center, drift) launch only torch / cuBLAS kernels, which memcheck
# would slow down tens of times for nothing of ours (a GPU session has 10 minutes a command).
GPU_SANITIZE_TESTS := tests/gpu/test_boxes_gpu.py tests/test_cuda_module.py
# Every step after the build runs even when an earlier one fails (a GPU session is too scarce to
# lose the sanitizer and the benchmarks to one failing test); the target fails at the end if any
# step did. compute-sanitizer refuses the device on gVisor machines ("Device not supported"):
# that step then fails on its own, the others still report.
gpu-build:
	$(GPU_PY) -m pip install -q --no-build-isolation --no-deps -e . -Cbuild-dir=build/gpu \
		-Ccmake.define.CURATA_CUDA=ON -Ccmake.define.CURATA_CUDA_ARCHS=$(GPU_ARCHS)

gpu-check: gpu-build
	@status=0; \
	echo "== GPU tests"; CURATA_REQUIRE_GPU=1 $(GPU_PY) -m pytest -q -p no:cacheprovider $(GPU_TESTS) || status=1; \
	echo "== GPU scores tests"; CURATA_REQUIRE_GPU=1 $(GPU_PY) -m pytest -q -p no:cacheprovider -m gpu tests/test_scores.py || status=1; \
	echo "== compute-sanitizer memcheck"; compute-sanitizer --tool memcheck --error-exitcode 1 $(GPU_PY) -m pytest -q -p no:cacheprovider $(GPU_SANITIZE_TESTS) || status=1; \
	echo "== boxes benchmarks"; $(GPU_PY) -m benchmarks.run boxes --device cuda --quick || status=1; \
	if [ $$status -ne 0 ]; then echo "gpu-check: a step failed (see above)"; fi; exit $$status

# The other compute-sanitizer tools, each slow, over a subset of the box tests with torch inputs
# (33 cases: every kernel, tile edges, one large group, capped / empty / invalid images, errors):
# racecheck (shared-memory hazards of nms_mask / nms_reduce / pp_nms / iou_matrix), synccheck
# (barriers), initcheck (reads of device memory never written: the caller's workspace comes
# uninitialised from torch's caching allocator). tools/gpu_session.sh sanitize runs this.
GPU_SANITIZE_SUBSET := torch and not cupy and (iou_bit_identical or one_large_group or at_threshold or \
	batched_3d_with_valid or padded_caps or postprocess_edge or postprocess_bad_input or nms_bad_input)
gpu-sanitize: gpu-build
	@status=0; for tool in racecheck synccheck initcheck; do \
		echo "== compute-sanitizer $$tool"; \
		compute-sanitizer --tool $$tool --error-exitcode 1 $(GPU_PY) -m pytest -q -p no:cacheprovider \
			tests/gpu/test_boxes_gpu.py -k "$(GPU_SANITIZE_SUBSET)" || status=1; \
	done; exit $$status

# No GPU needed: the CUDA kernels' source run on a host simulation against the CPU library and
# through the GPU tests (tools/cuda_sim/README.md says what this can and cannot show).
cuda-sim: build
	tools/cuda_sim/build.sh && build/cuda_sim/driver 60
	PYMODULE=1 tools/cuda_sim/build.sh && $(PY) tools/cuda_sim/run_gpu_tests.py
	$(PY) tools/cuda_sim/run_torch_gpu_tests.py

clean:
	rm -rf build $(VENV) $(BENCH_VENV) *.egg-info
