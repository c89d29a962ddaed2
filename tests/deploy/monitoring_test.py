#!/usr/bin/env python3
"""The Grafana dashboard and the alerting rules against live binaries and a real Prometheus.

    monitoring_test.py BIN_DIR

Starts ijepa-coordinator, a Prometheus (Debian's package) that scrapes it and a training rank every second and
loads deploy/prometheus/alerts.yml, a short training run reporting to the coordinator and serving its own
/metrics, and a run whose loss turns NaN. Then checks that:
  - the dashboard has what Grafana needs to import it (unique panel ids, positions, data sources, refIds);
  - every ijepa_* metric a dashboard panel, a dashboard variable or a rule queries is in the live /metrics of
    the coordinator or the rank, and every label a query selects on exists on that metric (DCGM_* exempt);
  - every dashboard query, with the variables set to match all, returns data from Prometheus;
  - the NaN run makes the IjepaNanLoss alert fire;
  - the training rank stopped with SIGTERM exits 143 after a checkpoint.
Every wait is bounded; every process started is stopped on every exit path.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

import yaml

from live_test_util import Processes, free_port, wait_for, write_idx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DASHBOARD = os.path.join(ROOT, "deploy/grafana/ijepa-training.json")
RULES = os.path.join(ROOT, "deploy/prometheus/alerts.yml")
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
# Grafana's variables, set as "All" and a short rate window for a 1 s scrape interval.
VARIABLES = {"$__rate_interval": "10s", "$run": ".*", "$host": ".*"}

failures = []


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    failures.append(message)


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode()
    except OSError:
        return ""


def dashboard_queries(dashboard):
    """Every PromQL expression of the dashboard: panel targets and query variables (label_values' selector)."""
    queries = []

    def walk(panels):
        for p in panels:
            queries.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable.get("definition", ""))
        if match:
            queries.append(match.group(1))
    return queries


def check_dashboard_shape(dashboard):
    """What Grafana needs to import the dashboard: unique panel ids, a place and a data source for every panel,
    and a unique refId for every query of a panel."""
    panels = [p for p in dashboard["panels"]] + [c for p in dashboard["panels"] for c in p.get("panels", [])]
    ids = [p["id"] for p in panels]
    if len(ids) != len(set(ids)):
        fail("dashboard: panel ids are not unique")
    for p in panels:
        if not {"h", "w", "x", "y"} <= set(p.get("gridPos", {})):
            fail(f"dashboard: panel '{p.get('title')}' has no complete gridPos")
        if p["type"] == "row":
            continue
        refs = [t.get("refId") for t in p.get("targets", [])]
        if not p.get("datasource") or not refs or len(refs) != len(set(refs)) or None in refs:
            fail(f"dashboard: panel '{p.get('title')}' lacks a data source or unique query refIds")


def rule_queries(path):
    with open(path) as f:
        groups = yaml.safe_load(f)["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def selectors(expr):
    """(metric, [label names]) for each metric selector in a PromQL expression."""
    found = []
    for match in re.finditer(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?", expr):
        name, matchers = match.group(1), match.group(2) or ""
        if not (name.startswith("ijepa_") or name.startswith("DCGM_")):
            continue
        # `label=""` selects series without the label, so it needs no such label to exist.
        labels = [label for label, op, value in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"',
                                                            matchers) if not (op == "=" and value == "")]
        found.append((name, labels))
    return found


def exposition(text):
    """{series name: set of label names} from Prometheus text exposition."""
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{([^}]*)\})?", line)
        labels = set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="', match.group(3) or ""))
        series.setdefault(match.group(1), set()).update(labels)
    return series


def check_names_and_labels(queries, scraped, source):
    for expr in queries:
        for name, labels in selectors(expr):
            if name.startswith("DCGM_"):
                continue  # the DCGM exporter needs a GPU; none here
            if name not in scraped:
                fail(f"{source}: {name} is in no live /metrics (query: {expr.strip()})")
                continue
            missing = [label for label in labels if label not in scraped[name] | TARGET_LABELS]
            if missing:
                fail(f"{source}: {name} has no label {missing} (query: {expr.strip()})")


def substitute(expr):
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def prometheus_query(port, expr):
    body = http_get(f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    return json.loads(body) if body else {"status": "unreachable"}


def on_alarm(signum, frame):
    raise TimeoutError("the test ran past 240 s")


def main():
    bin_dir = sys.argv[1]
    if not shutil.which("prometheus"):
        print("SKIP: prometheus is missing (deploy/setup.sh installs it)")
        return 77
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    check_dashboard_shape(dashboard)
    panel_queries = dashboard_queries(dashboard)
    alert_queries = rule_queries(RULES)

    # The servers outlive a killed test, so the test ends itself (stopping them) before CTest's timeout would.
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(240)
    work = tempfile.mkdtemp(prefix="ijepa-monitoring-test.")
    try:
        with Processes() as processes:
            return run(bin_dir, work, processes, panel_queries, alert_queries)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(bin_dir, work, processes, panel_queries, alert_queries):
    grpc_port, coordinator_metrics, rank_metrics, prometheus_port = (free_port() for _ in range(4))
    coordinator = f"127.0.0.1:{grpc_port}"
    processes.start([os.path.join(bin_dir, "ijepa-coordinator"), "--db", os.path.join(work, "coordinator.db"),
                     "--listen", coordinator, "--metrics-listen", f"127.0.0.1:{coordinator_metrics}",
                     "--heartbeat-timeout", "10"], os.path.join(work, "coordinator.log"))
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [RULES],
            "scrape_configs": [
                {"job_name": "ijepa-coordinator",
                 "static_configs": [{"targets": [f"127.0.0.1:{coordinator_metrics}"]}]},
                {"job_name": "ijepa-trainer", "static_configs": [{"targets": [f"127.0.0.1:{rank_metrics}"]}]},
            ]}, f)
    processes.start(["prometheus", "--config.file=" + os.path.join(work, "prometheus.yml"),
                     "--storage.tsdb.path=" + os.path.join(work, "tsdb"),
                     f"--web.listen-address=127.0.0.1:{prometheus_port}"], os.path.join(work, "prometheus.log"))

    write_idx(os.path.join(work, "data"), 64)
    config = os.path.join(work, "config.yaml")
    with open(config, "w") as f:
        f.write(f"data: {{dataset: idx, root_path: {work}/data, batch_size: 4, crop_size: 28, num_workers: 1}}\n"
                "mask: {patch_size: 4, min_keep: 4}\n"
                "meta: {model_name: vit_tiny, pred_depth: 1, pred_emb_dim: 96, threads: 1}\n"
                "optimization: {epochs: 100, warmup: 1, max_steps: 1000}\n"
                "logging: {log_every: 1}\n"
                "checkpoint: {every_steps: 1000}\n"
                f"coordinator: {{address: '{coordinator}', heartbeat_s: 0.5}}\n")
    train = [os.path.join(bin_dir, "ijepa-train"), "--config", config]
    rank = processes.start(train + ["--set", f"logging.folder={work}/live",
                                    "--set", f"metrics.listen=127.0.0.1:{rank_metrics}"],
                           os.path.join(work, "live.log"))
    nan_run = subprocess.run(train + ["--set", f"logging.folder={work}/nan", "--set", "optimization.lr=1e30",
                                      "--set", "optimization.start_lr=1e30", "--set", "optimization.max_steps=20"],
                             capture_output=True, text=True, timeout=120)
    if nan_run.returncode != 1 or "loss is nan" not in nan_run.stderr + nan_run.stdout:
        fail(f"the NaN run exited {nan_run.returncode} without a NaN report:\n{nan_run.stderr[-2000:]}")

    def rank_at_step(step):
        text = http_get(f"http://127.0.0.1:{rank_metrics}/metrics")
        match = re.search(r"^ijepa_train_step\{[^}]*\} (\S+)$", text, re.M)
        return match and float(match.group(1)) >= step

    wait_for(lambda: rank_at_step(3), 120, "the training rank reached no step 3 on its /metrics")
    scraped = exposition(http_get(f"http://127.0.0.1:{coordinator_metrics}/metrics"))
    for name, labels in exposition(http_get(f"http://127.0.0.1:{rank_metrics}/metrics")).items():
        scraped.setdefault(name, set()).update(labels)
    check_names_and_labels(panel_queries, scraped, "dashboard")
    check_names_and_labels(alert_queries, scraped, "alerts.yml")

    # Enough samples of the rank's series for rate() over 10 s.
    wait_for(lambda: prometheus_query(prometheus_port, 'count_over_time(ijepa_train_step{rank!=""}[10s]) >= 5')
             .get("data", {}).get("result"), 60, "Prometheus holds no 5 samples of the rank's step")
    for expr in panel_queries:
        if "DCGM_" in expr:
            continue
        answer = prometheus_query(prometheus_port, substitute(expr))
        if answer.get("status") != "success":
            fail(f"dashboard query failed: {answer.get('error', answer.get('status'))}: {expr}")
        elif not answer["data"]["result"]:
            fail(f"dashboard query returned no data: {expr}")

    def nan_alert_firing():
        alerts = json.loads(http_get(f"http://127.0.0.1:{prometheus_port}/api/v1/alerts") or "{}")
        return any(a["labels"].get("alertname") == "IjepaNanLoss" and a["state"] == "firing"
                   and a["labels"].get("run") == "nan" for a in alerts.get("data", {}).get("alerts", []))

    try:
        wait_for(nan_alert_firing, 30, "IjepaNanLoss did not fire naming run nan")
    except TimeoutError as e:
        fail(str(e))

    rank.send_signal(signal.SIGTERM)
    code = rank.wait(timeout=60)
    if code != 143:
        fail(f"the training rank exited {code} after SIGTERM, not 143")
    summary = os.path.join(work, "live", "summary.json")
    if not os.path.exists(summary) or json.load(open(summary)).get("exit_reason") != "signal":
        fail("the training rank stopped by SIGTERM wrote no summary.json with exit_reason signal")

    if failures:
        for log in ("coordinator.log", "prometheus.log", "live.log"):
            with open(os.path.join(work, log)) as f:
                print(f"--- {log} (tail)\n" + "".join(f.readlines()[-15:]), file=sys.stderr)
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print(f"PASS: {len(panel_queries)} dashboard queries and {len(alert_queries)} rules against live /metrics "
          "and Prometheus; IjepaNanLoss fired; SIGTERM exit 143")
    return 0


if __name__ == "__main__":
    sys.exit(main())
