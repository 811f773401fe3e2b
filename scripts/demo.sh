#!/usr/bin/env bash
# The README's main command: installs every dependency, builds, starts cajald with its embedded
# defaults (SQLite store and job files under a fresh data dir), submits the Fashion-MNIST MLP of
# examples/mlp.yaml through the gRPC API with `cajal submit --wait`, downloads the trained model,
# evaluates it, and stops the server with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh

work=${CAJAL_DEMO_DIR:-$(mktemp -d)}
port=${CAJAL_DEMO_PORT:-50051}
echo "== cajald --port $port --data_dir $work/data"
build/bin/cajald --port "$port" --data_dir "$work/data" 2>"$work/cajald.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  grep -q "serving" "$work/cajald.log" && break
  kill -0 "$server" || { cat "$work/cajald.log"; exit 1; }
  sleep 0.1
done
cajal=(build/bin/cajal --server "localhost:$port")

echo "== cajal submit --spec examples/mlp.yaml --wait"
"${cajal[@]}" submit --spec examples/mlp.yaml --wait | tee "$work/submit.log"
id=$(sed -n 's/^submitted job \([0-9a-f]*\)$/\1/p' "$work/submit.log")
"${cajal[@]}" get "$id"

echo "== cajal download $id"
"${cajal[@]}" download "$id" -o "$work/model.cajal"
echo "== cajal evaluate --model $work/model.cajal"
build/bin/cajal evaluate --model "$work/model.cajal"

echo "== stopping cajald (SIGTERM)"
kill -TERM "$server"
wait "$server"
trap - EXIT
echo "done: model in $work/model.cajal, server log in $work/cajald.log"
