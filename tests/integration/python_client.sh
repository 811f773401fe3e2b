#!/usr/bin/env bash
# A second, independent client: Python grpcio with stubs generated from proto/ by protoc and
# grpc_python_plugin talks to a real cajald on a loopback port chosen at run time.
set -euo pipefail
build=${1:-build}
root=$(pwd)
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

bash "$root/tests/tools/grpc_stubs.sh" "$work/stubs"

"$build/bin/cajald" --host 127.0.0.1 --port 0 --metrics_port 0 --data_dir "$work/data" --threads_per_job 1 \
  2>"$work/cajald.log" &
server=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.*serving .* on 127.0.0.1:\([0-9]*\),.*/\1/p' "$work/cajald.log")
  [ -n "$port" ] && break
  kill -0 "$server" || { cat "$work/cajald.log"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "cajald did not start"; cat "$work/cajald.log"; exit 1; }
echo "cajald on port $port"
/usr/bin/python3 "$root/tests/tools/python_client.py" "$work/stubs" "127.0.0.1:$port" "$work"
kill -TERM "$server"
wait "$server"
echo "cajald exited with $?"
