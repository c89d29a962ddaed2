#!/usr/bin/env bash
# deploy/prometheus checked by promtool: the scrape config and the alerting rules are valid, and the rules'
# unit tests (alerts_test.yml: each alert fires on its situation and stays quiet otherwise) pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v promtool >/dev/null || { echo "SKIP: promtool is missing (deploy/setup.sh installs prometheus)"; exit 77; }
promtool check config "$root/deploy/prometheus/prometheus.yml"
promtool check rules "$root/deploy/prometheus/alerts.yml"
promtool test rules "$here/alerts_test.yml"
echo "PASS: promtool check config, check rules, test rules"
