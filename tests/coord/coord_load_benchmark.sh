#!/usr/bin/env bash
# The coordinator load benchmark of BENCHMARKS.md: starts ijepa-coordinator on loopback with a fresh database,
# drives it with ijepa-coord-load (default: 1000 simulated ranks, 1 heartbeat/s each carrying 5 step metrics,
# 60 s), then times CoordinatorClient::report_step with the coordinator up, absent and hanging. Prints the two
# JSON reports and the load average; exit status 1 when any call failed.
#   tests/coord/coord_load_benchmark.sh [BIN_DIR] [extra ijepa-coord-load flags...]
set -euo pipefail
bin=${1:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin}
shift || true
work=$(mktemp -d)
trap 'kill "$coordinator" 2>/dev/null || true; wait "$coordinator" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin/ijepa-coordinator" --listen "127.0.0.1:$port" --db "$work/c.db" --metrics-listen "127.0.0.1:0" \
  >"$work/coordinator.log" 2>&1 &
coordinator=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$bin/ijepa-coord-load" --coordinator "127.0.0.1:$port" --pid "$coordinator" --json "$@"
status=$?
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$bin/ijepa-coord-load" --coordinator "127.0.0.1:$port" --client-overhead 200000 --json 2>/dev/null
exit $status
