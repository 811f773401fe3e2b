#!/usr/bin/env bash
# The service benchmarks (issue: the service): GetJob latency/QPS at 1 and 16 clients,
# 1,000 WatchJob streams on one running job (server RSS), and the Fashion-MNIST MLP through
# the service against `cajal train` in the same run. Run on an otherwise idle machine:
#   bench/service.sh [build_dir]
set -euo pipefail
build=${1:-build}
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

start_server() {
  "$build/bin/cajald" --host 127.0.0.1 --port 0 --metrics_port 0 --data_dir "$work/data$1" "${@:2}" 2>"$work/log$1" &
  server=$!
  port=
  for _ in $(seq 100); do
    port=$(sed -n 's/.*on 127.0.0.1:\([0-9]*\),.*/\1/p' "$work/log$1")
    [ -n "$port" ] && return 0
    sleep 0.1
  done
  echo "cajald did not start"; cat "$work/log$1"; exit 1
}

start_server 1
"$build/bin/service_bench" --server "127.0.0.1:$port" latency --clients 1 --seconds 5
"$build/bin/service_bench" --server "127.0.0.1:$port" latency --clients 16 --seconds 5
"$build/bin/service_bench" --server "127.0.0.1:$port" watchers --streams 1000 --server_pid "$server"
kill -TERM "$server"; wait "$server" || true

steps=${STEPS:-3000}
echo "== MLP ($steps steps): cajal train vs the same job through cajald"
for i in 1 2 3; do
  train=$("$build/bin/cajal" train --spec examples/mlp.yaml --out "$work/out" \
    --set training.epochs=100 --set "training.max_steps=$steps" | tail -1)
  start_server "s$i"
  svc=$("$build/bin/cajal" --server "127.0.0.1:$port" submit --spec examples/mlp.yaml --wait \
    --set training.epochs=100 --set "training.max_steps=$steps" | grep samples_per_sec | tail -1)
  kill -TERM "$server"; wait "$server" || true
  t=$(echo "$train" | sed -n 's/.*samples_per_sec=\([0-9.]*\).*/\1/p')
  s=$(echo "$svc" | sed -n 's/.*samples_per_sec=\([0-9.]*\).*/\1/p')
  echo "run=$i train_samples_per_sec=$t service_samples_per_sec=$s" \
    "service_slowdown_pct=$(/usr/bin/python3 -c "print(f'{(1 - $s / $t) * 100:.1f}')")"
done
