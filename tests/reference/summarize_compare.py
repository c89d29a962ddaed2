#!/usr/bin/env python3
"""The side-by-side table of BENCHMARKS.md from the JSON lines of compare_step.sh.

    tests/reference/compare_step.sh build/bin 3 2 > runs.jsonl
    tests/reference/summarize_compare.py runs.jsonl [more.jsonl ...]

compare_step.sh prints, for each round, one line of `ijepa-bench step --json` and then one of
bench_reference_step.py for the same workload and dtype: each such couple is a pair. Per workload and dtype this
prints one markdown row: both sides' images/s in run order, the ratio of their medians, the range and median of the
per-pair ratios, how many pairs reach the issue's target (1.3x in bf16, 1.0x in fp32), and the target. Files are
read in order, so several runs of the script add up to one table.
"""
import json
import statistics
import sys

TARGETS = {"bf16": 1.3, "fp32": 1.0}


def read_runs(path):
    """The JSON objects of PATH's lines that hold one (others, such as warnings, are skipped)."""
    runs = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.lstrip().startswith("{"):
                continue
            try:
                run = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{number}: not a JSON line: {e}")
            missing = [key for key in ("workload", "dtype", "images_per_second") if key not in run]
            if missing:
                sys.exit(f"{path}:{number}: no {', '.join(missing)} in {line.strip()}")
            runs.append(run)
    return runs


def read_pairs(paths):
    """{(workload, dtype): [(ijepa img/s, reference img/s), ...]} in run order."""
    pairs = {}
    for path in paths:
        runs = read_runs(path)
        for ours, reference in zip(runs[::2], runs[1::2]):
            if "implementation" in ours or reference.get("implementation") != "reference-eager-pytorch":
                sys.exit(f"{path}: expected an ijepa-bench line followed by a reference line, got {ours} then "
                         f"{reference}")
            key = (ours["workload"], ours["dtype"])
            if key != (reference["workload"], reference["dtype"]):
                sys.exit(f"{path}: ijepa-bench ran {key}, the reference after it "
                         f"{(reference['workload'], reference['dtype'])}")
            pairs.setdefault(key, []).append((ours["images_per_second"], reference["images_per_second"]))
        if len(runs) % 2:
            sys.exit(f"{path}: {len(runs)} runs, an odd number: the last has no partner")
    return pairs


def listed(values):
    return ", ".join(f"{v:.1f}" for v in values)


def row(workload, dtype, pairs):
    ours = [a for a, _ in pairs]
    reference = [b for _, b in pairs]
    ratios = [a / b for a, b in pairs]
    target = TARGETS[dtype]
    at_target = sum(r >= target for r in ratios)
    return (f"| {workload} | {dtype} | {listed(ours)} | {listed(reference)} | "
            f"**{statistics.median(ours) / statistics.median(reference):.2f}x** | "
            f"{min(ratios):.2f}-{max(ratios):.2f}x | {statistics.median(ratios):.2f}x | "
            f"{at_target} of {len(ratios)} | {target}x |")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    pairs = read_pairs(sys.argv[1:])
    print("| workload | dtype | ijepa img/s | reference img/s | ratio of medians | per pair | median pair | "
          "pairs at target | target |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for workload, dtype in sorted(pairs):
        print(row(workload, dtype, pairs[(workload, dtype)]))


if __name__ == "__main__":
    main()
