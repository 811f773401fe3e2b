#!/usr/bin/env bash
# Runs the Kubeflow Pipelines files of deploy/pipelines/ with the local build as KFP's driver
# and launcher would (tests/tools/kfp_simulate.py): every v2 file parses strictly as KFP's
# PipelineSpec; the pipelines and one-task components run as DAGs (the CSV pipeline's upstream
# data step, its Dataset artifacts into `cajal train`, its condition on test_accuracy both
# ways); each step's ExecutorOutput parses with protojson rules, with the metrics in the
# Metrics artifact's metadata and the declared output parameters present; the legacy v1
# components write `MLPipeline Metrics` JSON and the model to their {outputPath}s.
#   bash tests/integration/kfp_outputs_test.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
exec /usr/bin/python3 tests/tools/kfp_simulate.py "$build"
