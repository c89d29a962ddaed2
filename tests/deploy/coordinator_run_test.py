#!/usr/bin/env python3
"""Real training runs reporting to a real coordinator, read back with ijepa-ctl, on loopback.

    coordinator_run_test.py BIN_DIR

Starts ijepa-coordinator on a free loopback port with its SQLite database in a temporary folder, and trains
ViT-tiny for a few steps on a tiny synthetic IDX set with coordinator.address and coordinator.run_name set.
Then checks that:
  - the run exits 0 and `ijepa-ctl runs --json` lists it finished at step max_steps; `ijepa-ctl show RUN
    --json` agrees (run and its one worker finished at that step); the table of `ijepa-ctl runs` names it;
  - a run without a step bound, once the coordinator has seen a step, survives the coordinator being SIGKILLed:
    training goes on while it is down (the run's CSV grows), the coordinator restarted on the same port and
    database catches up with the run (same run, same creation time); then `ijepa-ctl stop` through the restarted
    coordinator ends it as SIGTERM would (exit 143, a checkpoint written), and ijepa-ctl shows it stopped at the
    step its CSV ends at, listed once.
The second run ends on request rather than after a step count sized from the first run's step time: sized while
the machine was loaded and run once it was quiet, such a run could end while the coordinator was still down. Every
wait is bounded; every process started is stopped on every exit path; exits non-zero naming what failed.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from live_test_util import Processes, free_port, wait_for, write_idx

TEST_SECONDS = 240  # the whole test; CTest's TIMEOUT is above it
SHORT_STEPS = 6
IMAGES = 8000  # 2000 steps of batch 4 in an epoch: the runs stay in their first, so no epoch-end checkpoint slows them

failures = []


class Failure(Exception):
    """A check the rest of the test depends on failed."""


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    failures.append(message)


def port_open(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(none)\n"


class Coordinator:
    """ijepa-coordinator on a fixed loopback port with its database in WORK; restartable on the same ones."""

    def __init__(self, bin_dir, work, processes):
        self.binary = os.path.join(bin_dir, "ijepa-coordinator")
        self.db = os.path.join(work, "coordinator.db")
        self.log = os.path.join(work, "coordinator.log")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.processes = processes
        self.process = None

    def start(self):
        self.process = self.processes.start(
            [self.binary, "--db", self.db, "--listen", self.address,
             "--metrics-listen", f"127.0.0.1:{free_port()}"], self.log)

        def ready():
            if self.process.poll() is not None:
                raise Failure(f"ijepa-coordinator exited {self.process.returncode} at start")
            return port_open(self.port)

        wait_for(ready, 30, f"ijepa-coordinator did not listen on {self.address}")

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=10)


class Ctl:
    """ijepa-ctl against one coordinator."""

    def __init__(self, bin_dir, address):
        self.argv = [os.path.join(bin_dir, "ijepa-ctl"), "--coordinator", address]

    def __call__(self, *args, timeout=5):
        """(exit code, stdout, stderr) of `ijepa-ctl --coordinator ADDRESS ARGS --timeout TIMEOUT`."""
        done = subprocess.run(self.argv + list(args) + ["--timeout", str(timeout)], capture_output=True, text=True,
                              timeout=timeout + 20)
        return done.returncode, done.stdout, done.stderr

    def json(self, *args):
        """The parsed JSON of `ijepa-ctl ARGS --json`; None when the command fails."""
        code, out, _ = self(*args, "--json")
        return json.loads(out) if code == 0 else None

    def runs_named(self, name):
        listed = self.json("runs")
        if listed is None:
            raise Failure("ijepa-ctl runs --json failed")
        return [run for run in listed["runs"] if run["name"] == name]

    def run_step(self, name):
        shown = self.json("show", name)
        return shown["run"]["step"] if shown else -1


def csv_steps(folder):
    """Data rows in the run's CSV so far (one per step with logging.log_every 1)."""
    try:
        with open(os.path.join(folder, "jepa_r0.csv")) as f:
            return max(0, sum(1 for _ in f) - 1)
    except OSError:
        return 0


def check_ended(ctl, name, state, steps):
    """ijepa-ctl lists the run NAME once, in STATE (finished or stopped) at step STEPS, and `show` agrees, its one
    worker finished at that step; returns its show JSON."""
    listed = ctl.runs_named(name)
    if len(listed) != 1:
        fail(f"ijepa-ctl runs --json lists run {name} {len(listed)} times, not once")
        if not listed:
            return None
    run = listed[0]
    if run["state"] != state or run["step"] != steps:
        fail(f"ijepa-ctl runs --json: {name} is {run['state']} at step {run['step']}, not {state} at {steps}")
    shown = ctl.json("show", name)
    if shown is None:
        fail(f"ijepa-ctl show {name} --json failed")
        return None
    if shown["run"]["state"] != state or shown["run"]["step"] != steps:
        fail(f"ijepa-ctl show {name} --json: {shown['run']['state']} at step {shown['run']['step']}, "
             f"not {state} at {steps}")
    workers = shown["workers"]
    if len(workers) != 1 or workers[0]["state"] != "finished" or workers[0]["step"] != steps:
        fail(f"ijepa-ctl show {name} --json: workers {workers}, not one finished at step {steps}")
    return shown


def on_alarm(signum, frame):
    raise Failure(f"the test ran past {TEST_SECONDS} s")


def main():
    bin_dir = sys.argv[1]
    # The servers outlive a killed test, so the test ends itself (stopping them) before CTest's timeout would.
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_SECONDS)
    work = tempfile.mkdtemp(prefix="ijepa-coordinator-run-test.")
    started = time.monotonic()
    try:
        with Processes() as processes:
            try:
                run(bin_dir, work, processes)
            except (Failure, TimeoutError, subprocess.TimeoutExpired) as e:
                fail(str(e))
        if failures:
            for log in ("coordinator.log", "short.log", "restart.log"):
                print(f"--- {log} (tail)\n" + tail(os.path.join(work, log)), file=sys.stderr)
            print(f"{len(failures)} check(s) failed", file=sys.stderr)
            return 1
    finally:
        signal.alarm(0)
        shutil.rmtree(work, ignore_errors=True)
    print(f"PASS: runs reported to ijepa-coordinator and shown finished by ijepa-ctl; a run survived a "
          f"coordinator SIGKILL and restart and was stopped through it ({time.monotonic() - started:.0f} s)")
    return 0


def run(bin_dir, work, processes):
    coordinator = Coordinator(bin_dir, work, processes)
    coordinator.start()
    ctl = Ctl(bin_dir, coordinator.address)

    write_idx(os.path.join(work, "data"), IMAGES)
    config = os.path.join(work, "config.yaml")
    with open(config, "w") as f:
        f.write(f"data: {{dataset: idx, root_path: {work}/data, batch_size: 4, crop_size: 28, num_workers: 1}}\n"
                "mask: {patch_size: 4, min_keep: 4}\n"
                "meta: {model_name: vit_tiny, pred_depth: 1, pred_emb_dim: 96, threads: 1}\n"
                f"optimization: {{epochs: 100, warmup: 1, max_steps: {SHORT_STEPS}}}\n"
                "logging: {log_every: 1}\n"
                f"coordinator: {{address: '{coordinator.address}', heartbeat_s: 0.5}}\n")

    def train(name, log, *overrides):
        return processes.start([os.path.join(bin_dir, "ijepa-train"), "--config", config,
                                "--set", f"logging.folder={work}/{name}", "--set", f"coordinator.run_name={name}",
                                *overrides], os.path.join(work, log))

    # A short run: reported, finished, shown with its step count.
    short = train("short-run", "short.log")
    code = short.wait(timeout=120)
    if code != 0:
        raise Failure(f"the short run exited {code}, not 0")
    if "not confirmed" in tail(os.path.join(work, "short.log"), 5):
        fail("the short run's end was not confirmed by the coordinator")
    check_ended(ctl, "short-run", "finished", SHORT_STEPS)
    code, table, err = ctl("runs")
    if code != 0 or "short-run" not in table or "finished" not in table:
        fail(f"ijepa-ctl runs exited {code} without a finished short-run row:\n{table}{err}")

    # A run without a step bound; the coordinator is killed once it has seen a step, and restarted while training
    # goes on; then the run is stopped through the restarted coordinator.
    folder = os.path.join(work, "restart-run")
    long_run = train("restart-run", "restart.log", "--set", "optimization.max_steps=1000000")
    wait_for(lambda: ctl.run_step("restart-run") > 0, 120, "ijepa-ctl show restart-run reported no step > 0")
    created = ctl.json("show", "restart-run")["run"]["created_time"]

    coordinator.kill()
    killed_at = csv_steps(folder)
    code, _, _ = ctl("runs", timeout=2)
    if code == 0:
        fail("ijepa-ctl runs succeeded with the coordinator killed")
    wait_for(lambda: long_run.poll() is not None or csv_steps(folder) >= killed_at + 5, 60,
             f"training made no 5 steps past step {killed_at} with the coordinator down")
    if long_run.poll() is not None:
        raise Failure(f"the restart run exited {long_run.returncode} while the coordinator was down "
                      f"(CSV at {csv_steps(folder)} steps)")
    down_steps = csv_steps(folder)
    print(f"coordinator killed at step {killed_at}; restarted at step {down_steps}")

    coordinator.start()
    wait_for(lambda: ctl.run_step("restart-run") >= down_steps, 60,
             f"the restarted coordinator did not catch up with the run's step {down_steps}")
    shown = ctl.json("show", "restart-run")
    if shown["run"]["state"] != "running" or shown["run"]["created_time"] != created:
        fail(f"after the restart restart-run is {shown['run']['state']}, created {shown['run']['created_time']}; "
             f"expected running, created {created}")

    code, out, err = ctl("stop", "restart-run", "--reason", "test over")
    if code != 0:
        raise Failure(f"ijepa-ctl stop restart-run exited {code}: {out}{err}")
    code = long_run.wait(timeout=120)
    if code != 143:
        raise Failure(f"the stopped run exited {code}, not 143 as on SIGTERM")
    if not os.path.exists(os.path.join(folder, "jepa-latest.pth.tar")):
        fail("the stopped run left no jepa-latest.pth.tar")
    if "not confirmed" in tail(os.path.join(work, "restart.log"), 5):
        fail("the restart run's end was not confirmed by the restarted coordinator")
    steps = csv_steps(folder)
    print(f"stopped at step {steps}")
    shown = check_ended(ctl, "restart-run", "stopped", steps)
    if shown and shown["run"]["created_time"] != created:
        fail(f"restart-run was created again: created_time {shown['run']['created_time']}, before {created}")
    listed = ctl.json("runs")
    names = sorted(r["name"] for r in listed["runs"]) if listed else None
    if names != ["restart-run", "short-run"]:
        fail(f"ijepa-ctl runs --json lists {names}, not the two runs once each")


if __name__ == "__main__":
    sys.exit(main())
