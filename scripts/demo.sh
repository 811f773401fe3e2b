#!/usr/bin/env bash
# The README's main command: installs every dependency, builds, and trains the Fashion-MNIST
# MLP (examples/mlp.yaml) with `cajal train`, then evaluates the saved model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
out=${CAJAL_DEMO_OUT:-$(mktemp -d)}
echo "== cajal train --spec examples/mlp.yaml --out $out"
build/bin/cajal train --spec examples/mlp.yaml --out "$out"
echo "== cajal evaluate --model $out/model.cajal"
build/bin/cajal evaluate --model "$out/model.cajal"
echo "model: $out/model.cajal  metrics: $out/metrics.json"
