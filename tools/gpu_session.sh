#!/usr/bin/env bash
# A GPU session's measurements in stages that each fit the device tool's 10-minute command limit
# (30 minutes of device time per session: about five calls with start-up). Run on the GPU machine,
# from the repository root, through the device tool:
#
#   tools/gpu_session.sh check     # facts, `make gpu-check` (build sm_90, GPU tests, memcheck, boxes bench)
#   tools/gpu_session.sh sanitize  # `make gpu-sanitize`: racecheck, synccheck, initcheck (a warm
#                                  # machine reuses build/gpu from check)
#   tools/gpu_session.sh boxes     # benchmarks.run boxes --device cuda (batched_nms, postprocess)
#   tools/gpu_session.sh search    # kNN, k-center, k-means, Index on the GPU
#   tools/gpu_session.sh drift     # per-column tests and MMD on the GPU
#   QUICK=1 tools/gpu_session.sh search   # the --quick shapes
#
# Read tools/gpu_checklist.md first (what to verify, in order).
#
# Logs and result files land in $OUT (the device tool brings them back). The machine has no package
# index: everything runs on its system python3 (CUDA torch, CuPy, torchvision, pytest, scipy,
# scikit-build-core, pybind11). faiss-gpu is not there and cannot be carried (its wheels need the
# CUDA 12 cuBLAS wheels, hundreds of MB): the kNN cases then compare with a plain torch baseline.
set -uo pipefail
stage=${1:?usage: tools/gpu_session.sh check|sanitize|boxes|search|drift}
out=${OUT:-/tmp/curata-gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
log="$out/$stage.log"

case "$stage" in
  check)
    {
      nvidia-smi
      python3 -c "import torch, cupy, torchvision; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cupy', cupy.__version__, 'torchvision', torchvision.__version__)"
      python3 -c "import faiss; print('faiss', faiss.__version__, 'gpu', hasattr(faiss, 'StandardGpuResources'))" || true
      ls /usr/local/cuda*/lib64/libcublas.so.* 2>&1 | head  # a cuBLAS 12 here would let faiss-gpu-cu12 run
      nproc
      # What the build needs (a missing piece fails make gpu-check at its first step): nvcc,
      # cmake, ninja, the Python headers, the build backends; and the sanitizer for memcheck.
      nvcc --version | tail -2; cmake --version | head -1; ninja --version
      python3 -c "import sysconfig, os; h = os.path.join(sysconfig.get_paths()['include'], 'Python.h'); print(h, os.path.exists(h))"
      python3 -c "import scikit_build_core, pybind11, pytest, hypothesis; print('skbuild', scikit_build_core.__version__, 'pybind11', pybind11.__version__, 'pytest', pytest.__version__, 'hypothesis', hypothesis.__version__)"
      compute-sanitizer --version | tail -1
      time make gpu-check
    } 2>&1 | tee "$log"
    ;;
  sanitize)
    { time make gpu-sanitize; } 2>&1 | tee "$log"
    ;;
  boxes|search|drift)
    python3 -m benchmarks.run "$stage" --device cuda ${QUICK:+--quick} 2>&1 | tee "$log"
    cp benchmarks/results/"$stage"-*.json benchmarks/results/"$stage"-*.md "$out"/ 2>/dev/null
    # Keep only this run's GPU files (the CPU ones travel in the repository anyway).
    find "$out" -name "$stage-cpu-*" -delete
    ;;
  *)
    echo "unknown stage $stage" >&2
    exit 2
    ;;
esac
