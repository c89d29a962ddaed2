#!/usr/bin/env bash
# The checks that need a GPU, in one pass that fits a short lease, on a machine whose python3 has the pinned
# CUDA torch: run from the repository root with a folder made by gpu_bundle.sh.
#   1. gpu_test: NCCL on one GPU, gradient buckets on its stream, the golden steps on CUDA;
#   2. ijepa-train on CUDA over the NCCL backend: the quickstart config on the Fashion-MNIST test split;
#   3. the training step, ijepa-bench against the eager-PyTorch reference, alternating, on the same GPU.
# Every result lands in RESULTS_DIR (a summary table last on stdout). A step that fails is reported and the
# next one still runs; the exit status is non-zero if any failed.
#   deploy/bench/gpu_checks.sh BUNDLE_DIR RESULTS_DIR [ROUNDS]
set -uo pipefail
bundle=$(cd "${1:?usage: gpu_checks.sh BUNDLE_DIR RESULTS_DIR [ROUNDS]}" && pwd)
results=${2:?usage: gpu_checks.sh BUNDLE_DIR RESULTS_DIR [ROUNDS]}
rounds=${3:-2}
mkdir -p "$results"
failed=()

site=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
nvidia_libs=$(find "$site/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | paste -sd:)
export LD_LIBRARY_PATH="$site/torch/lib:$nvidia_libs:$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export IJEPA_SHARED_DIR=$bundle/shared

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  nproc
  for b in "$bundle"/bin/*; do ldd "$b" | grep 'not found' | sed "s|^|$(basename "$b"): |"; done
} >"$results/environment.txt" 2>&1
cat "$results/environment.txt"

step() {  # step NAME TIMEOUT_S COMMAND...: runs one check, its output in RESULTS_DIR/NAME.log
  local name=$1 limit=$2
  shift 2
  echo "== $name"
  if timeout "$limit" "$@" >"$results/$name.log" 2>&1; then
    echo "   ok"
  else
    echo "   FAILED (exit $?); last lines:"
    tail -n 15 "$results/$name.log" | sed 's/^/   /'
    failed+=("$name")
  fi
}

step gpu_test 300 "$bundle/bin/gpu_test"

data=$(mktemp -d)
for kind in images-idx3 labels-idx1; do  # the test split serves as both splits: the bundle carries only it
  cp "$bundle/data/t10k-$kind-ubyte.gz" "$data/"
  cp "$bundle/data/t10k-$kind-ubyte.gz" "$data/train-$kind-ubyte.gz"
done
run=$(mktemp -d)
step train_cuda_nccl 300 "$bundle/bin/ijepa-train" --config deploy/configs/quickstart.yaml \
  --set data.root_path="$data" --set logging.folder="$run" --set meta.device=cuda --set dist.backend=nccl \
  --set meta.threads=4 --set data.num_workers=4
cp "$run/summary.json" "$results/train_summary.json" 2>/dev/null
cp "$run/jepa_r0.csv" "$results/train_log.csv" 2>/dev/null

bench_round() {
  for workload in a b; do
    local steps=$([[ $workload == a ]] && echo 100 || echo 50)
    for dtype in fp32 bf16; do
      timeout 120 "$bundle/bin/ijepa-bench" step --device cuda --workload $workload --dtype $dtype --threads 4 --steps $steps \
        --warmup 10 --json || echo "{\"failed\": \"ijepa-bench $workload $dtype\"}"
      (cd "$bundle/reference" && timeout 120 python3 bench_reference_step.py --device cuda --workload $workload --dtype $dtype \
        --threads 4 --steps $steps --warmup 10) || echo "{\"failed\": \"reference $workload $dtype\"}"
    done
  done
}
echo "== step benchmark ($rounds rounds)"
for ((round = 1; round <= rounds; round++)); do bench_round; done >"$results/step_bench.jsonl" 2>"$results/step_bench.err"

echo "== summary"
python3 - "$results/step_bench.jsonl" <<'PY'
import collections, json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = collections.defaultdict(list)
for r in rows:
    if "failed" in r:
        print("failed:", r["failed"])
        continue
    by[(r["workload"], r["dtype"], r.get("implementation", "ijepa"))].append(r["images_per_second"])
for workload in "ab":
    for dtype in ("fp32", "bf16"):
        ours = by.get((workload, dtype, "ijepa"), [])
        ref = by.get((workload, dtype, "reference-eager-pytorch"), [])
        if ours and ref:
            o, f = statistics.median(ours), statistics.median(ref)
            print(f"workload {workload} {dtype}: ijepa {o:8.1f} img/s  reference {f:8.1f} img/s  ratio {o / f:.2f}x")
PY
tail -n 3 "$results/train_cuda_nccl.log"
if ((${#failed[@]})); then
  echo "failed: ${failed[*]}"
  exit 1
fi
