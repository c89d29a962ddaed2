#!/usr/bin/env python3
"""summarize_compare.py: pairs each ijepa-bench line with the reference line after it, and refuses input that does
not pair up, naming the file."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "summarize_compare.py")


def ours(workload, dtype, images_per_second):
    return {"workload": workload, "dtype": dtype, "images_per_second": images_per_second, "step_ms": 1.0}


def reference(workload, dtype, images_per_second):
    return dict(ours(workload, dtype, images_per_second), implementation="reference-eager-pytorch")


class SummarizeCompare(unittest.TestCase):
    def run_on(self, *files):
        paths = []
        for runs in files:
            with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
                f.write("not JSON: a warning line\n")
                f.writelines(json.dumps(run) + "\n" for run in runs)
            self.addCleanup(os.unlink, f.name)
            paths.append(f.name)
        done = subprocess.run([sys.executable, SCRIPT, *paths], capture_output=True, text=True)
        return done, paths

    def test_each_row_has_the_ratio_of_medians_and_the_pairs_at_the_target(self):
        done, _ = self.run_on(
            [ours("b", "bf16", 30.0), reference("b", "bf16", 20.0), ours("b", "bf16", 40.0),
             reference("b", "bf16", 32.0), ours("a", "fp32", 90.0), reference("a", "fp32", 100.0)],
            [ours("b", "bf16", 36.0), reference("b", "bf16", 30.0)])
        self.assertEqual(done.returncode, 0, done.stderr)
        rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in done.stdout.splitlines()[2:]}
        # (b) bf16 over both files: medians 36 and 30 (1.20x); pairs 1.50x, 1.25x and 1.20x, one at 1.3x.
        self.assertEqual(rows[("b", "bf16")], "| b | bf16 | 30.0, 40.0, 36.0 | 20.0, 32.0, 30.0 | **1.20x** | "
                                              "1.20-1.50x | 1.25x | 1 of 3 | 1.3x |")
        self.assertEqual(rows[("a", "fp32")], "| a | fp32 | 90.0 | 100.0 | **0.90x** | 0.90-0.90x | 0.90x | "
                                              "0 of 1 | 1.0x |")

    def test_a_run_without_its_partner_is_refused_naming_the_file(self):
        done, paths = self.run_on([ours("b", "bf16", 30.0), reference("b", "bf16", 20.0), ours("b", "bf16", 31.0)])
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(paths[0], done.stderr)
        self.assertIn("no partner", done.stderr)

    def test_pairs_out_of_order_or_of_different_rows_are_refused(self):
        done, paths = self.run_on([reference("b", "bf16", 20.0), ours("b", "bf16", 30.0)])
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(paths[0], done.stderr)
        done, paths = self.run_on([ours("b", "bf16", 30.0), reference("a", "bf16", 20.0)])
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("the reference after it", done.stderr)

    def test_a_broken_line_is_refused_naming_the_file_and_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write(json.dumps(ours("b", "bf16", 30.0)) + "\n" + '{"workload": "b", "dtype": \n')
        self.addCleanup(os.unlink, f.name)
        done = subprocess.run([sys.executable, SCRIPT, f.name], capture_output=True, text=True)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(f"{f.name}:2: not a JSON line", done.stderr)
        done, paths = self.run_on([ours("b", "bf16", 30.0), {"workload": "b", "dtype": "bf16"}])
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(f"{paths[0]}:3: no images_per_second", done.stderr)


if __name__ == "__main__":
    unittest.main()
