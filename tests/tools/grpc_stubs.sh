#!/usr/bin/env bash
# Generates the Python gRPC stubs of proto/ (protoc --python_out and grpc_python_plugin) into a
# directory, for the Python clients and servers in tests/tools/ (Debian's /usr/bin/python3,
# python3-grpcio): cajal's API and the part of Katib's manager API that --katib-push calls.
#
#   bash tests/tools/grpc_stubs.sh OUT_DIR     # run from the repository root
#   /usr/bin/python3 -c 'import sys; sys.path.insert(0, "OUT_DIR"); from cajal.v1 import ...'
#   ... from katib.v1beta1 import api_pb2, api_pb2_grpc
set -euo pipefail
out=${1:?usage: grpc_stubs.sh OUT_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
protoc --proto_path="$root/proto" --python_out="$out" \
  --grpc_out="$out" --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" \
  cajal/v1/dataset.proto cajal/v1/job_spec.proto cajal/v1/metrics.proto \
  cajal/v1/training_service.proto katib/v1beta1/api.proto
touch "$out/cajal/__init__.py" "$out/cajal/v1/__init__.py" \
  "$out/katib/__init__.py" "$out/katib/v1beta1/__init__.py"
