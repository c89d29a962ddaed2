#!/usr/bin/env python3
"""Probe accuracy against pretraining minutes from a run's {write_tag}_eval.csv, as an SVG (no plotting library):
the target encoder's top-1 after each evaluation, and the baselines of the run's last evaluation (the encoder at
its initialisation, raw pixels) as dashed lines. Prints the table for BENCHMARKS.md.

  deploy/bench/plot_probe_curve.py runs/fmnist_30min/jepa_eval.csv docs/fmnist_probe.svg [--protocol linear]
"""
import argparse
import csv

W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 400, 70, 170, 30, 50
LINE = 14  # label spacing, pixels


def main():
    p = argparse.ArgumentParser()
    p.add_argument("csv")
    p.add_argument("svg")
    p.add_argument("--protocol", default="linear")
    args = p.parse_args()
    rows = [r for r in csv.DictReader(open(args.csv)) if r["protocol"] == args.protocol]
    curve = [(float(r["train_seconds"]) / 60, float(r["top1"]), int(r["epoch"]), int(r["step"]))
             for r in rows if r["features"] == "target"]
    baselines = {r["features"]: float(r["top1"]) for r in rows if r["features"] != "target"}
    if not curve:
        raise SystemExit(f"{args.csv}: no rows for the target encoder with protocol {args.protocol}")

    print("| minutes | epoch | step | top-1 |\n|---:|---:|---:|---:|")
    for minutes, top1, epoch, step in curve:
        print(f"| {minutes:.1f} | {epoch} | {step} | {100 * top1:.1f}% |")
    for name, top1 in baselines.items():
        print(f"| baseline: {name} | | | {100 * top1:.1f}% |")

    values = [t for _, t, _, _ in curve] + list(baselines.values())
    y_lo, y_hi = max(0.0, min(values) - 0.05), min(1.0, max(values) + 0.05)
    x_hi = max(m for m, _, _, _ in curve) * 1.05 or 1.0
    x = lambda m: LEFT + (W - LEFT - RIGHT) * m / x_hi
    y = lambda t: TOP + (H - TOP - BOTTOM) * (y_hi - t) / (y_hi - y_lo)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
           f'font-size="12"><rect width="{W}" height="{H}" fill="white"/>',
           f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="black"/>',
           f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="black"/>',
           f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 12}" text-anchor="middle">pretraining minutes</text>',
           f'<text x="16" y="{(TOP + H - BOTTOM) / 2}" transform="rotate(-90 16 {(TOP + H - BOTTOM) / 2})" '
           f'text-anchor="middle">{args.protocol} probe top-1 (%)</text>']
    for i in range(6):
        t = y_lo + (y_hi - y_lo) * i / 5
        svg.append(f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{100 * t:.0f}</text>')
        m = x_hi * i / 5
        svg.append(f'<text x="{x(m):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{m:.0f}</text>')
    label_y = {}  # baselines' labels from the top down, at least a line apart when their values are close
    for name, top1 in sorted(baselines.items(), key=lambda item: -item[1]):
        label_y[name] = max(y(top1) + 4, max(label_y.values(), default=-LINE) + LINE)
    for (name, top1), color in zip(baselines.items(), ["#d62728", "#7f7f7f", "#2ca02c"]):
        svg.append(f'<line x1="{LEFT}" y1="{y(top1):.1f}" x2="{W - RIGHT}" y2="{y(top1):.1f}" stroke="{color}" '
                   f'stroke-dasharray="6 4"/><text x="{W - RIGHT + 6}" y="{label_y[name]:.1f}" fill="{color}">'
                   f'{name.replace("_", " ")} {100 * top1:.1f}</text>')
    points = " ".join(f"{x(m):.1f},{y(t):.1f}" for m, t, _, _ in curve)
    svg.append(f'<polyline points="{points}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    svg += [f'<circle cx="{x(m):.1f}" cy="{y(t):.1f}" r="4" fill="#1f77b4"/>' for m, t, _, _ in curve]
    m, t, _, _ = curve[-1]
    svg.append(f'<text x="{W - RIGHT + 6}" y="{y(t) - 8:.1f}" fill="#1f77b4">I-JEPA {100 * t:.1f}</text></svg>')
    open(args.svg, "w").write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
