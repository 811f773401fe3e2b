#!/usr/bin/env bash
# Observability end to end: cajald (--metrics_port 0, --log_format json) scraped by Debian's
# Prometheus server every second while a short job runs; promtool on a live scrape and on
# deploy/prometheus/rules.yaml; the dashboard's and rules' metric names against the scrape;
# JSON log lines. The checks are in tests/tools/prometheus_check.py.
set -euo pipefail
build=${1:-build}
root=$(pwd)
for tool in /usr/bin/prometheus promtool; do
  command -v "$tool" >/dev/null || { echo "FAIL $tool is missing (scripts/setup.sh installs prometheus)"; echo "0 passed, 1 failed"; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$root/tests/tools/grpc_stubs.sh" "$work/stubs" >/dev/null
/usr/bin/python3 "$root/tests/tools/prometheus_check.py" "$build" "$work" "$work/stubs" || {
  status=$?
  echo "---- cajald log"; tail -n 30 "$work/cajald.log" 2>/dev/null || true
  echo "---- prometheus log"; tail -n 30 "$work/prometheus.log" 2>/dev/null || true
  exit "$status"
}
