#!/usr/bin/env bash
# Integration test of deploy/slurm on a real one-node Slurm cluster (slurm_cluster.sh): the CPU batch script
# with 2 tasks trains a few steps on a synthetic IDX set and writes its checkpoint and summary.json (world size
# 2); a job signalled as before its time limit (SIGUSR1 to the batch shell, as `--signal=B:USR1@120` does)
# checkpoints, requeues itself and resumes from that checkpoint to the end; SIGTERM checkpoints and ends the job
# (exit 143) without a requeue; a bad config fails the job with exit code 2. The cluster is stopped on every exit path; every wait is bounded.
#   slurm_test.sh BIN_DIR      (the folder holding ijepa-train)
set -uo pipefail

bin=${1:?usage: slurm_test.sh BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "SKIP: the one-node Slurm cluster runs as root"; exit 77; }
for tool in munged slurmctld slurmd sbatch; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is missing (deploy/setup.sh installs slurm-wlm and munge)"; exit 77; }
done

work=$(mktemp -d /tmp/ijepa-slurm-test.XXXXXX)
cleanup() {
  kill "$watchdog" 2>/dev/null
  "$here/slurm_cluster.sh" stop "$work/cluster"
  rm -rf "$work"
}
# The daemons outlive a killed script, so the script ends itself (and stops them) before CTest's timeout would.
(sleep 360 && kill -TERM $$) >/dev/null 2>&1 &
watchdog=$!
trap cleanup EXIT
trap 'echo "FAIL: stopped by a signal (past the 360 s limit?)" >&2; exit 124' TERM INT HUP
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
# wait_for SECONDS COMMAND...: polls every 0.5 s; false when the time ran out.
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.5; done
}
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" 2>/dev/null; }
job_field() { timeout 10 scontrol show job "$1" | grep -o "\b$2=[^ ]*" | head -1 | cut -d= -f2; }
job_field_is() { [ "$(job_field "$1" "$2")" = "$3" ]; }
job_ended() { case $(job_field "$1" JobState) in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) return 0 ;; esac; return 1; }
show_logs() { tail -n 30 "$@" "$work/cluster/log/slurmctld.log" "$work/cluster/log/slurmd.log" >&2 2>/dev/null; }

"$here/slurm_cluster.sh" start "$work/cluster" || exit 1
# shellcheck disable=SC1091
source "$work/cluster/env"
python3 "$here/write_idx.py" "$work/data" 64
cat >"$work/config.yaml" <<CONF
data: {dataset: idx, root_path: $work/data, batch_size: 4, crop_size: 28, num_workers: 1}
mask: {patch_size: 4, min_keep: 4}
meta: {model_name: vit_tiny, pred_depth: 1, pred_emb_dim: 96}
optimization: {epochs: 50, warmup: 1, max_steps: 6}
logging: {folder: $work/run, log_every: 1}
checkpoint: {every_steps: 2}
CONF
export IJEPA_ROOT=$root IJEPA_BIN=$bin
submit() { timeout 20 sbatch --parsable --chdir="$work" "$@"; }

echo "== ${SECONDS}s: a 2-task CPU job completes"
job=$(submit --output="$work/done.out" "$root/deploy/slurm/cpu.sbatch" "$work/config.yaml")
wait_for 120 job_ended "$job" || fail "job $job did not end within 120 s"
job_field_is "$job" ExitCode 0:0 || { fail "job $job ended with $(job_field "$job" ExitCode)"; show_logs "$work/done.out"; }
[ "$(json_field "$work/run/summary.json" world_size)" = 2 ] || fail "summary.json: world_size is not 2"
[ "$(json_field "$work/run/summary.json" steps)" = 6 ] || fail "summary.json: steps is not 6"
[ "$(json_field "$work/run/summary.json" exit_reason)" = max_steps ] || fail "summary.json: exit_reason is not max_steps"
[ -f "$work/run/jepa-latest.pth.tar" ] && [ -f "$work/run/jepa-step00000006.pth.tar" ] ||
  fail "no checkpoint of step 6 in $(ls "$work/run" | tr '\n' ' ')"

echo "== ${SECONDS}s: a job signalled before its time limit checkpoints, requeues and resumes"
job=$(submit --output="$work/preempt.out" "$root/deploy/slurm/cpu.sbatch" "$work/config.yaml" \
  --set logging.folder="$work/preempt" --set optimization.max_steps=16)
if ! wait_for 120 test -f "$work/preempt/jepa-latest.pth.tar"; then
  fail "job $job wrote no checkpoint within 120 s"; show_logs "$work/preempt.out"
fi
timeout 10 scancel --batch --signal=USR1 "$job" || fail "scancel --batch --signal=USR1 $job failed"
wait_for 30 job_field_is "$job" Restarts 1 || fail "job $job was not requeued"
wait_for 150 job_ended "$job" || fail "job $job did not end within 150 s after the requeue"
job_field_is "$job" JobState COMPLETED || { fail "job $job ended $(job_field "$job" JobState)"; show_logs "$work/preempt.out"; }
grep -q "stopped after a checkpoint (exit 138); requeueing" "$work/preempt.out" || fail "no requeue after SIGUSR1"
resumed=$(grep -o "resumed from $work/preempt/jepa-latest.pth.tar at step [0-9]*" "$work/preempt.out" | grep -o "[0-9]*$")
[ -n "$resumed" ] && [ "$resumed" -gt 0 ] && [ "$resumed" -lt 16 ] ||
  fail "the requeued job did not resume from its checkpoint (resumed at step '${resumed}')"
[ "$(json_field "$work/preempt/summary.json" steps)" = 16 ] || fail "the resumed run did not reach step 16"
[ "$(json_field "$work/preempt/summary.json" exit_reason)" = max_steps ] || fail "the resumed run did not end at max_steps"
[ "$(json_field "$work/preempt/summary.json" world_size)" = 2 ] || fail "the resumed run's world_size is not 2"

echo "== ${SECONDS}s: SIGTERM to the batch shell checkpoints and ends the job (exit 143), no requeue"
job=$(submit --output="$work/term.out" "$root/deploy/slurm/cpu.sbatch" "$work/config.yaml" \
  --set logging.folder="$work/term" --set optimization.max_steps=1000)
wait_for 120 test -f "$work/term/jepa-latest.pth.tar" || fail "job $job wrote no checkpoint within 120 s"
timeout 10 scancel --batch --signal=TERM "$job" || fail "scancel --batch --signal=TERM $job failed"
wait_for 60 job_ended "$job" || fail "job $job did not end within 60 s after SIGTERM"
job_field_is "$job" ExitCode 143:0 || fail "job $job ended with $(job_field "$job" ExitCode) after SIGTERM, not 143:0"
job_field_is "$job" Restarts 0 || fail "job $job was requeued after SIGTERM"
steps=$(json_field "$work/term/summary.json" steps)
[ "$(json_field "$work/term/summary.json" exit_reason)" = signal ] && [ -n "$steps" ] &&
  [ -f "$work/term/jepa-step$(printf %08d "$steps").pth.tar" ] ||
  fail "the job stopped by SIGTERM left no checkpoint of its last step (summary steps '${steps}')"

echo "== ${SECONDS}s: a bad config fails the job with exit code 2 before any rank starts"
job=$(submit --output="$work/bad.out" "$root/deploy/slurm/cpu.sbatch" "$work/config.yaml" --set optimization.lr=fast)
wait_for 60 job_ended "$job" || fail "job $job with a bad config did not end within 60 s"
[ "$(job_field "$job" ExitCode)" = 2:0 ] || fail "job $job with a bad config: ExitCode $(job_field "$job" ExitCode), not 2:0"
grep -q "optimization.lr" "$work/bad.out" || fail "the job output does not name optimization.lr"

if [ $failures -gt 0 ]; then
  echo "$failures check(s) failed; job outputs:" >&2
  tail -n 15 "$work"/*.out >&2
  exit 1
fi
echo "PASS: Slurm batch job, preemption with requeue and resume, SIGTERM, bad config"
