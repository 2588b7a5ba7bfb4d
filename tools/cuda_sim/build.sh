#!/usr/bin/env bash
# Builds the host simulation of curata's CUDA kernels (see README.md):
#   tools/cuda_sim/build.sh            -> build/cuda_sim/driver       (C++ randomised checks)
#   SANITIZE=1 tools/cuda_sim/build.sh -> build/cuda_sim/driver_asan  (ASan + UBSan)
#   PYMODULE=1 tools/cuda_sim/build.sh -> build/cuda_sim/py/_cuda*.so (for run_gpu_tests.py)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$ROOT/build/cuda_sim
PY=${PYTHON:-$ROOT/.venv/bin/python}
mkdir -p "$OUT/gen" "$OUT/obj" "$OUT/py"
for f in nms iou postprocess; do python3 "$HERE/transform.py" "$ROOT/cuda/$f.cu" "$OUT/gen/$f.cpp"; done
FLAGS="-std=c++20 -O1 -g -fPIC -ffp-contract=off -I$HERE/include -I$ROOT/cpp/include -I$ROOT/cuda -pthread"
SUFFIX=""
if [ "${SANITIZE:-0}" = 1 ]; then FLAGS="$FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer"; SUFFIX=_asan; fi
OBJ=$OUT/obj$SUFFIX
mkdir -p "$OBJ"
pids=()
g++ $FLAGS -c "$OUT/gen/nms.cpp" -o "$OBJ/nms.o" & pids+=($!)
g++ $FLAGS -c "$OUT/gen/iou.cpp" -o "$OBJ/iou.o" & pids+=($!)
g++ $FLAGS -c "$OUT/gen/postprocess.cpp" -o "$OBJ/postprocess.o" & pids+=($!)
g++ $FLAGS -c "$HERE/cub_sim.cpp" -o "$OBJ/cub_sim.o" & pids+=($!)
for s in "$ROOT"/cpp/src/*.cpp; do g++ $FLAGS -fopenmp -c "$s" -o "$OBJ/core_$(basename "$s" .cpp).o" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
if [ "${PYMODULE:-0}" = 1 ]; then
  PYINC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  PBINC=$("$PY" -c "import pybind11; print(pybind11.get_include())")
  EXT=$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
  g++ $FLAGS -I"$PYINC" -I"$PBINC" -c "$HERE/device_sim.cpp" -o "$OBJ/device_sim.o"
  g++ $FLAGS -I"$PYINC" -I"$PBINC" -DCURATA_CUDA_VERSION_STR='"sim"' -DCURATA_CUDA_ARCHS_STR='"sim"' \
    -c "$ROOT/cpp/bindings/cuda_module.cpp" -o "$OBJ/cuda_module.o"
  g++ -shared $FLAGS -fopenmp "$OBJ"/nms.o "$OBJ"/iou.o "$OBJ"/postprocess.o "$OBJ"/cub_sim.o "$OBJ"/core_*.o "$OBJ"/device_sim.o \
    "$OBJ"/cuda_module.o -o "$OUT/py/_cuda$EXT"
  echo "$OUT/py/_cuda$EXT"
else
  g++ $FLAGS -c "$HERE/driver.cpp" -o "$OBJ/driver.o"
  g++ $FLAGS -fopenmp "$OBJ"/nms.o "$OBJ"/iou.o "$OBJ"/postprocess.o "$OBJ"/cub_sim.o "$OBJ"/core_*.o "$OBJ"/driver.o -o "$OUT/driver$SUFFIX"
  echo "$OUT/driver$SUFFIX"
fi
