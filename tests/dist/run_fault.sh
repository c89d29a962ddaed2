#!/usr/bin/env bash
# Runs a 2-rank fault scenario of dist_fault_helper and checks that the job ends with a clear error instead
# of hanging: a non-zero exit that is not the guard's timeout (124), and the expected report. With `succeeds`, a
# scenario that is no fault (a rank that announced long work of its own) must instead end with exit code 0.
#   run_fault.sh MPIEXEC HELPER SCENARIO EXPECTED_REGEX [succeeds]
set -u
mpiexec=$1 helper=$2 scenario=$3 expected=$4 outcome=${5:-fails}
options=(--allow-run-as-root --oversubscribe)
# Under Slurm the other ranks keep running when one dies; Open MPI's mpirun would kill them itself.
[ "$scenario" = die ] && options+=(--mca orte_abort_on_non_zero_status 0)
output=$(timeout 60 "$mpiexec" "${options[@]}" -n 2 "$helper" "$scenario" 2>&1)
code=$?
echo "$output"
if [ "$outcome" = succeeds ]; then
  if [ "$code" -ne 0 ]; then
    echo "FAIL: exit code $code; expected 0" >&2
    exit 1
  fi
elif [ "$code" -eq 0 ] || [ "$code" -eq 124 ]; then
  echo "FAIL: exit code $code; expected a failure before the 60 s guard" >&2
  exit 1
fi
if ! grep -Eq "$expected" <<<"$output"; then
  echo "FAIL: no line matches: $expected" >&2
  exit 1
fi
echo "PASS: exit code $code with the expected output"
