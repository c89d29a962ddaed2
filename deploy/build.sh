#!/usr/bin/env bash
# Configures (once) and builds the project into build/, binaries in build/bin/.
#   deploy/build.sh                  everything
#   deploy/build.sh ijepa-train      only the named targets (faster while iterating)
# Uses LibTorch from the .venv that deploy/setup.sh made, Ninja and ccache.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${IJEPA_BUILD_DIR:-$root/build}
torch_prefix=$("$root/.venv/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')

if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=${IJEPA_BUILD_TYPE:-Release} \
    -DCMAKE_PREFIX_PATH="$torch_prefix" -Wno-dev ${IJEPA_CMAKE_ARGS:-} >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log" >&2; exit 1; }
fi
jobs=${IJEPA_BUILD_JOBS:-$(nproc)}
if [ $# -gt 0 ]; then
  cmake --build "$build" -j "$jobs" --target "$@"
else
  cmake --build "$build" -j "$jobs"
fi
