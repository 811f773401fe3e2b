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
runs=${RUNS:-3}
echo "== MLP ($steps steps, $runs alternating runs): cajal train vs the same job through cajald"
start_server s
trains=()
svcs=()
for i in $(seq "$runs"); do
  train=$("$build/bin/cajal" train --spec examples/mlp.yaml --out "$work/out" \
    --set training.epochs=100 --set "training.max_steps=$steps" | tail -1)
  svc=$("$build/bin/cajal" --server "127.0.0.1:$port" submit --spec examples/mlp.yaml --wait \
    --set training.epochs=100 --set "training.max_steps=$steps" | grep samples_per_sec | tail -1)
  t=$(echo "$train" | sed -n 's/.*samples_per_sec=\([0-9.]*\).*/\1/p')
  s=$(echo "$svc" | sed -n 's/.*samples_per_sec=\([0-9.]*\).*/\1/p')
  trains+=("$t")
  svcs+=("$s")
  echo "run=$i train_samples_per_sec=$t service_samples_per_sec=$s"
done
kill -TERM "$server"; wait "$server" || true
/usr/bin/python3 - "${trains[*]}" "${svcs[*]}" <<'PY'
import statistics, sys
t = [float(x) for x in sys.argv[1].split()]
s = [float(x) for x in sys.argv[2].split()]
mt, ms = statistics.median(t), statistics.median(s)
print(f"median_train_samples_per_sec={mt:.0f} median_service_samples_per_sec={ms:.0f} "
      f"service_slowdown_pct={(1 - ms / mt) * 100:.1f}")
PY
