#!/usr/bin/env bash
# Packs what deploy/bench/gpu_checks.sh needs into one folder, for a GPU machine that has the same CUDA
# LibTorch (the pinned torch wheel, in its Python) but none of this project's build dependencies and no network:
# the binaries, every shared library they load that is neither LibTorch's, CUDA's nor the C runtime's, the
# reference's golden numbers, the Fashion-MNIST test split and the reference benchmark scripts.
#   deploy/bench/gpu_bundle.sh OUT_DIR [BUILD_DIR]      (build first: deploy/build.sh gpu_test ijepa-bench ijepa-train)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: gpu_bundle.sh OUT_DIR [BUILD_DIR]}
build=${2:-$root/build}
binaries=(gpu_test ijepa-bench ijepa-train)

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/shared/reference" "$out/data" "$out/reference"
for b in "${binaries[@]}"; do
  [ -x "$build/bin/$b" ] || { echo "gpu_bundle: $build/bin/$b is missing; build it first" >&2; exit 1; }
  cp "$build/bin/$b" "$out/bin/"
done
# Libraries the GPU machine provides itself: LibTorch and NVIDIA's (its torch wheel and CUDA), the C runtime
# and the compiler's runtime (a newer one there serves binaries built here).
provided='/\.venv/|^/usr/local/cuda|/(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libutil|libresolv|libgcc_s|libstdc\+\+)\.so'
for b in "${binaries[@]}"; do ldd "$build/bin/$b"; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -Ev "$provided" | while read -r lib; do cp -L "$lib" "$out/lib/"; done
cp "$root/../shared/reference/ijepa_golden.json" "$out/shared/reference/"
cp /usr/share/datasets/fashion-mnist/t10k-*-idx*-ubyte.gz "$out/data/"
cp "$root"/tests/reference/{bench_reference_step.py,ijepa_ref.py} "$out/reference/"
du -sh "$out"
