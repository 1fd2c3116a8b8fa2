#!/bin/sh
# bench/gpu-check.sh — on a machine with a GPU: build embedkit, run the GPU
# tests (every OpenCL device present) and `ek bench gpu`, in under 8 minutes.
#
#   sh bench/gpu-check.sh [BUILD_DIR]        (default build-gpucheck)
#
# Needs the Debian packages of `make deps` (ocl-icd-opencl-dev,
# opencl-headers; libclblast-dev optional).  On NVIDIA the ICD loader may
# know no vendor (no /etc/OpenCL/vendors/nvidia.icd in containers): the
# script then points it at the driver's libnvidia-opencl.so.1 through a
# private vendors directory.  Output: test log and bench JSON under
# BUILD_DIR/gpu-check/.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$SRC/build-gpucheck}
OUT=$B/gpu-check
JOBS=$(nproc 2>/dev/null || echo 4)
mkdir -p "$OUT"
start=$(date +%s)
say() { echo "gpu-check [$(( $(date +%s) - start ))s]: $*"; }

# --- OpenCL ICD: make sure the NVIDIA driver is visible when present ------
if ! ls /etc/OpenCL/vendors/*.icd >/dev/null 2>&1 && [ -z "${OCL_ICD_VENDORS:-}" ]; then
  for lib in /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 /usr/lib64/libnvidia-opencl.so.1 \
             /usr/local/nvidia/lib64/libnvidia-opencl.so.1 /usr/lib/libnvidia-opencl.so.1; do
    if [ -e "$lib" ]; then
      mkdir -p "$OUT/vendors"
      echo "$lib" > "$OUT/vendors/nvidia.icd"
      export OCL_ICD_VENDORS="$OUT/vendors"
      say "pointing the OpenCL ICD loader at $lib"
      break
    fi
  done
fi
command -v clinfo >/dev/null 2>&1 && clinfo -l | tee "$OUT/clinfo.txt" || true

# --- build ------------------------------------------------------------------
say "building in $B"
cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake.log" 2>&1
cmake --build "$B" -j"$JOBS" --target ek ek-genmodel test_gpu test_device >"$OUT/build.log" 2>&1 || {
  tail -30 "$OUT/build.log"; exit 1; }
sh "$SRC/tools/make_test_models.sh" "$B/ek-genmodel" "$B/models" "$SRC" >"$OUT/models.log" 2>&1

# --- GPU tests ----------------------------------------------------------------
say "GPU tests"
export EK_SOURCE_DIR="$SRC" EK_MODELS="$B/models" EK_BIN="$B/ek"
timeout 300 "$B/tests/test_gpu" 2>&1 | tee "$OUT/test_gpu.log"
# Device choice (cpu / gpu / auto / opencl:P:D) through ek_embed; on a real GPU
# the "gpu" and "auto" cases run on it.
timeout 120 "$B/tests/test_device" 2>&1 | tee "$OUT/test_device.log"

# --- benchmark ----------------------------------------------------------------
# A GPU if there is one; otherwise any OpenCL device (numbers then say so).
DEV=gpu
if ! timeout 120 "$B/ek" bench gpu --model "$B/models/default" --device gpu --reps 1 --batches 1 \
     --rows-1n 1000 --rows-nm 1000 --queries 2 >/dev/null 2>&1; then
  DEV=any
  say "no GPU device: benchmarking the first OpenCL device (NOT GPU numbers)"
fi
say "ek bench gpu --device $DEV"
timeout 240 "$B/ek" bench gpu --model "$B/models/default" --device "$DEV" --json --reps 3 \
  --batches 1,8,32,128 | tee "$OUT/bench_gpu.json"
say "done; logs in $OUT"
