// Outputs of `cajal train` for Kubeflow Pipelines steps (docs/kubeflow.md).
//
//   cajal train --spec mlp.yaml
//       --kfp-output-metadata /tmp/kfp_outputs/output_metadata.json   (KFP v2)
//       --mlpipeline-metrics /tmp/outputs/mlpipeline_metrics/data     (KFP v1)
//       --model-out /tmp/outputs/model/data                           ({outputPath: model})
//
// KFP v2 reads scalar metrics from the metadata of a `system.Metrics` output artifact. A
// container component reports them by writing an `ExecutorOutput` (protojson) to the path the
// launcher reads after the command exits:
//   {"artifacts": {"metrics": {"artifacts": [{"name": "metrics",
//                                              "metadata": {"val_accuracy": 0.8731, ...}}]}}}
// The same values also go to `parameterValues`, so a component that declares an output
// parameter of one of those names (NUMBER_DOUBLE `test_accuracy`) passes it downstream, where a
// pipeline can branch on it; the launcher ignores values no output declares.
// KFP v1 reads `{"metrics": [{"name": "val-accuracy", "numberValue": 0.8731,
// "format": "PERCENTAGE"}, ...]}` from the `MLPipeline Metrics` output; names must match
// ^[a-zA-Z]([-_a-zA-Z0-9]{0,62}[a-zA-Z0-9])?$.
#ifndef CAJAL_SERVICE_CLI_KFP_OUTPUT_H_
#define CAJAL_SERVICE_CLI_KFP_OUTPUT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "cajal/v1/metrics.pb.h"

namespace cajal {

// Where to write the KFP outputs; an empty path writes nothing.
struct KfpOutputOptions {
  std::string output_metadata_path;          // --kfp-output-metadata: v2 ExecutorOutput JSON
  std::string metrics_artifact = "metrics";  // --kfp-metrics-artifact: v2 output artifact name
  std::string mlpipeline_metrics_path;       // --mlpipeline-metrics: v1 metrics JSON
  std::string model_out_path;                // --model-out: a copy of model.cajal
};

// The final value of each of loss, accuracy, val_loss, val_accuracy, test_loss,
// test_accuracy (the latest point of that name in `report`), in that order; absent names
// are left out. Values are rounded to 6 significant digits.
std::vector<std::pair<std::string, double>> FinalMetrics(const v1::TrainingReport& report);

// KFP v2 ExecutorOutput JSON with `metrics` in the metadata of output artifact `artifact` and
// as parameter values.
std::string ExecutorOutputJson(const std::string& artifact,
                               const std::vector<std::pair<std::string, double>>& metrics);

// KFP v1 MLPipeline Metrics JSON: `val_accuracy` becomes `val-accuracy`; accuracies are
// PERCENTAGE, the rest RAW.
std::string MlpipelineMetricsJson(const std::vector<std::pair<std::string, double>>& metrics);

// Writes every output whose path is set, creating parent directories; `model_path` is the
// model.cajal just written. Errors name the flag and the path.
absl::Status WriteKfpOutputs(const KfpOutputOptions& options, const v1::TrainingReport& report,
                             const std::string& model_path);

}  // namespace cajal

#endif  // CAJAL_SERVICE_CLI_KFP_OUTPUT_H_
