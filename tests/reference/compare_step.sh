#!/usr/bin/env bash
# Side-by-side training-step speed: `ijepa-bench step` against the eager-PyTorch reference step
# (bench_reference_step.py, the project's torch), same workload, dtype and threads, alternating runs.
# Prints one JSON line per run; summarize_compare.py turns them into the table of BENCHMARKS.md.
#   tests/reference/compare_step.sh [BIN_DIR] [ROUNDS] [THREADS]
# WORKLOADS (default "a b") and DTYPES (default "bf16 fp32") pick the rows, e.g. WORKLOADS=b DTYPES=bf16.
# REFERENCE_GLIBC_TUNABLES, when set, is the reference's GLIBC_TUNABLES: with
# glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647 it runs with the malloc settings
# that ijepa's binaries choose for themselves (lib/common/malloc_tuning.h).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/build/bin}
rounds=${2:-3}
threads=${3:-2}
export OMP_NUM_THREADS=$threads
# Both sides alike: by default what ijepa-bench chooses by itself on a quiet machine (common/omp_wait.h).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-ACTIVE}
for workload in ${WORKLOADS:-a b}; do
  steps=$([[ $workload == a ]] && echo 20 || echo 6)
  for dtype in ${DTYPES:-bf16 fp32}; do
    for ((round = 1; round <= rounds; round++)); do
      "$bin/ijepa-bench" step --workload $workload --dtype $dtype --threads "$threads" --steps "$steps" \
        --warmup 2 --json 2>/dev/null
      (cd "$root/tests/reference" && env ${REFERENCE_GLIBC_TUNABLES:+GLIBC_TUNABLES=$REFERENCE_GLIBC_TUNABLES} \
        "$root/.venv/bin/python" bench_reference_step.py --workload $workload \
        --dtype $dtype --threads "$threads" --steps "$steps" --warmup 2 2>/dev/null)
    done
  done
done
