#!/usr/bin/env python3
"""Does a coordinator that is down or hanging slow training? The real trainer on the quickstart config, in
alternating rounds of three runs: no coordinator configured, one configured where nothing listens (down), and one
whose address accepts connections and never answers (hanging). Prints one JSON line per run (median step ms over
the steps after the first WARMUP) and then the medians per condition, for BENCHMARKS.md.

  tests/coord/client_step_time_ab.py [--bin build/bin] [--rounds 3] [--steps 120] [--warmup 20]
"""
import argparse
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "deploy"))
from live_test_util import free_port  # noqa: E402


def median_step_ms(csv_path, warmup):
    with open(csv_path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if int(row["step"]) > warmup]
    if not rows:
        raise SystemExit(f"{csv_path}: no steps after the first {warmup}")
    return statistics.median(float(row["step ms"]) for row in rows)


def train(binary, folder, steps, address):
    command = [binary, "--config", os.path.join(ROOT, "deploy/configs/quickstart.yaml"),
               "--set", f"logging.folder={folder}", "--set", f"optimization.max_steps={steps}",
               "--set", "eval.at_end=false", "--set", "eval.baselines=false",
               "--set", f"checkpoint.every_steps={steps}"]
    if address:
        command += ["--set", f"coordinator.address={address}"]
    result = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-2000:]}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", default=os.path.join(ROOT, "build/bin"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--warmup", type=int, default=20)
    args = p.parse_args()
    binary = os.path.join(args.bin, "ijepa-train")

    # Hanging: a listener with a backlog that is never accepted from: connections complete, nothing answers.
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(64)
    conditions = {"none": "", "down": f"127.0.0.1:{free_port()}",
                  "hanging": f"127.0.0.1:{hanging.getsockname()[1]}"}
    results = {name: [] for name in conditions}
    with tempfile.TemporaryDirectory(prefix="client-ab-") as scratch:
        for round_index in range(args.rounds):
            for name, address in conditions.items():
                folder = os.path.join(scratch, f"{name}-{round_index}")
                train(binary, folder, args.steps, address)
                step_ms = median_step_ms(os.path.join(folder, "jepa_r0.csv"), args.warmup)
                results[name].append(step_ms)
                print(json.dumps({"round": round_index + 1, "coordinator": name, "median_step_ms": step_ms}),
                      flush=True)
    summary = {name: {"runs": [round(v, 1) for v in values], "median_step_ms": round(statistics.median(values), 1)}
               for name, values in results.items()}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
