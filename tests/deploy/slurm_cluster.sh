#!/usr/bin/env bash
# A one-node Slurm cluster (munge, slurmctld, slurmd from Debian) confined to a scratch folder, for the tests.
#   slurm_cluster.sh start DIR    writes DIR/slurm.conf and DIR/env, starts the daemons, waits for the node
#   slurm_cluster.sh stop DIR     stops them by the pids in their pid files (idempotent)
# Clients use the cluster after `source DIR/env` (SLURM_CONF). Everything - munge key and socket, state, spool,
# logs, ports - lives in DIR, so the machine's own /etc/munge and /etc/slurm are neither used nor changed.
# Slurm runs as root (SlurmUser=root), as on these test machines. cred_expire=10 shortens the wait of a requeued
# job before it may start again (Slurm's default: 120 s).
set -euo pipefail

action=${1:?usage: slurm_cluster.sh start|stop DIR}
dir=${2:?usage: slurm_cluster.sh start|stop DIR}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

stop_pid_file() {
  local file=$1 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

stop() {
  # Jobs first (their slurmstepd children would outlive slurmd), then the daemons in reverse order of start.
  if [ -f "$dir/env" ]; then
    # shellcheck disable=SC1091
    (source "$dir/env" && timeout 5 scancel --quiet --user=root 2>/dev/null) || true
  fi
  stop_pid_file "$dir/slurmd.pid"
  stop_pid_file "$dir/slurmctld.pid"
  stop_pid_file "$dir/munge/munged.pid"
  pkill_steps
}

# slurmstepd processes of this cluster only (their command line names this folder's spool).
pkill_steps() {
  local pid
  for pid in $(pgrep -f "slurmstepd" 2>/dev/null || true); do
    grep -qs "$dir" "/proc/$pid/environ" "/proc/$pid/cmdline" && kill -9 "$pid" 2>/dev/null || true
  done
}

start() {
  for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null || { echo "slurm_cluster: $tool is missing (deploy/setup.sh installs slurm-wlm and munge)" >&2; exit 1; }
  done
  mkdir -p "$dir"/{munge,state,spool,log}
  chmod 755 "$dir" "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=128 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  local socket="$dir/munge/munge.socket"
  munged --force --key-file="$dir/munge/munge.key" --socket="$socket" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"

  local host node=ijepa-node cpus
  host=$(hostname)
  cpus=$(nproc)
  cat >"$dir/slurm.conf" <<CONF
ClusterName=ijepa-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=600
KillWait=10
InactiveLimit=0
NodeName=$node NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES OverSubscribe=YES MaxTime=INFINITE State=UP
CONF
  echo "export SLURM_CONF=$dir/slurm.conf" >"$dir/env"
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF" -N "$node"
  for _ in $(seq 60); do
    if timeout 5 sinfo --noheader --format=%t 2>/dev/null | grep -qx idle; then return 0; fi
    sleep 0.5
  done
  echo "slurm_cluster: the node did not become idle within 30 s" >&2
  tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  exit 1
}

case $action in
  start) start ;;
  stop) stop ;;
  *) echo "usage: slurm_cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
