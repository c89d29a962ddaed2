#!/usr/bin/env bash
# Runs one ijepa-train job step on every task of a Slurm allocation; the batch scripts beside it (gpu.sbatch,
# cpu.sbatch) set the resources and exec this.
#
#   ijepa-train.sh CONFIG [--set section.key=value ...]
#
# - Resumes by itself: when the run folder (logging.folder) holds {write_tag}-latest.pth.tar, the step starts with
#   meta.load_checkpoint=true, so a requeued job continues where it stopped instead of starting over.
# - Preemption: SIGUSR1 (sent by `#SBATCH --signal=B:USR1@120` before the time limit) or SIGTERM reaching this
#   shell is forwarded to the ranks, which agree on a step, write a checkpoint and exit with 128 + signal. After
#   SIGUSR1 the job requeues itself (`scontrol requeue`); after SIGTERM only when IJEPA_REQUEUE_ON_TERM=1. Slurm's
#   preemption with a GraceTime and `scancel --signal=TERM JOB` signal the ranks directly: they checkpoint too
#   (with PreemptMode=REQUEUE Slurm requeues the job itself). A plain `scancel JOB` also sends srun SIGTERM, and
#   srun then kills the ranks at once: that cancel keeps only the last periodic checkpoint.
#
# Environment (all optional):
#   IJEPA_ROOT              the repository (default: the submit folder); IJEPA_BIN: its build/bin
#   IJEPA_COORDINATOR       host:port of ijepa-coordinator: sets coordinator.address
#   IJEPA_METRICS_LISTEN    host:port for each rank's /metrics (rank r on port + r): sets metrics.listen
#   IJEPA_MAX_RESTARTS      requeue at most this many times (default 20)
#   IJEPA_REQUEUE_ON_TERM   1: requeue after SIGTERM too
#   IJEPA_SRUN_ARGS         extra srun options (e.g. --cpu-bind=cores)
set -euo pipefail

config=${1:?usage: ijepa-train.sh CONFIG [--set section.key=value ...]}
shift
root=${IJEPA_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
train=${IJEPA_BIN:-$root/build/bin}/ijepa-train
job=${SLURM_JOB_ID:?ijepa-train.sh runs inside a Slurm job (sbatch)}
restarts=${SLURM_RESTART_COUNT:-0}
say() { echo "ijepa-train.sh: job $job (restart $restarts): $*" >&2; }

# Ours first, so that the caller's --set options win.
overrides=()
[ -n "${SLURM_CPUS_PER_TASK:-}" ] && overrides+=(--set "meta.threads=$SLURM_CPUS_PER_TASK")
[ -n "${IJEPA_COORDINATOR:-}" ] && overrides+=(--set "coordinator.address=$IJEPA_COORDINATOR")
[ -n "${IJEPA_METRICS_LISTEN:-}" ] && overrides+=(--set "metrics.listen=$IJEPA_METRICS_LISTEN")
overrides+=("$@")
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}

# The whole config is checked once here (exit 2 names every bad key) and gives the run folder and tag.
resolved=$("$train" --config "$config" "${overrides[@]}" --validate)
logging_value() {
  awk -v key="$1" '/^[a-z_]+:/ { section = $1 } section == "logging:" && $1 == key ":" { $1 = ""; print; exit }' \
    <<<"$resolved" | sed -e 's/^ *//' -e 's/^"\(.*\)"$/\1/'
}
folder=$(logging_value folder)
tag=$(logging_value write_tag)
if [ -f "$folder/$tag-latest.pth.tar" ]; then
  say "resuming from $folder/$tag-latest.pth.tar"
  overrides+=(--set meta.load_checkpoint=true)
fi

step_pid=
received=
# To the ranks through Slurm (every step, not this shell), never to srun: srun answers SIGTERM by killing its
# tasks at once.
forward() {
  received=$1
  say "received SIG$1; asking the ranks to checkpoint and stop"
  scancel --signal="$1" "$job" || say "scancel --signal=$1 failed"
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM

# --kill-on-bad-exit stays off: ranks stopped by a signal exit 128 + signal, and killing rank 0 then would cut
# its final checkpoint short. A rank that dies makes the others fail within dist.timeout_s instead.
# shellcheck disable=SC2086
srun --mpi=pmix ${IJEPA_SRUN_ARGS:-} "$train" --config "$config" "${overrides[@]}" &
step_pid=$!
# `wait` returns early when a trapped signal arrives; wait again until the step itself has ended.
while :; do
  code=0
  wait "$step_pid" || code=$?
  kill -0 "$step_pid" 2>/dev/null || break
done

requeue=false
case $code in
  0) say "training finished"; exit 0 ;;
  138) requeue=true ;;                                          # 128 + SIGUSR1: the time limit is near
  143) [ "${IJEPA_REQUEUE_ON_TERM:-0}" = 1 ] && requeue=true ;; # 128 + SIGTERM
esac
if $requeue && [ "$restarts" -lt "${IJEPA_MAX_RESTARTS:-20}" ]; then
  say "stopped after a checkpoint (exit $code); requeueing"
  scontrol requeue "$job"
  exit 0
fi
say "training ended with exit code $code${received:+ after SIG$received}"
exit "$code"
