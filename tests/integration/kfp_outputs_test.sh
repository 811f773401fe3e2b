#!/usr/bin/env bash
# Runs the Kubeflow Pipelines components of deploy/pipelines/ with the local build as a KFP
# launcher would (tests/tools/kfp_simulate.py): `cajal train --kfp-output-metadata` must write
# an ExecutorOutput that parses with protojson rules, with the final metrics in the metadata
# of the `metrics` output artifact; the v1 components must write `MLPipeline Metrics` JSON and
# the model to their {outputPath}s.
#   bash tests/integration/kfp_outputs_test.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
exec /usr/bin/python3 tests/tools/kfp_simulate.py "$build"
