// `cajal train` and `cajal evaluate`: run the core in this process.
#ifndef CAJAL_SERVICE_CLI_TRAIN_COMMAND_H_
#define CAJAL_SERVICE_CLI_TRAIN_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/collective/collective.h"
#include "service/cli/kfp_output.h"
#include "service/cli/term_signal.h"
#include "service/katib/db_manager_client.h"

namespace cajal {

struct TrainOptions {
  std::string spec_path;
  std::string spec_text;  // the spec itself (--spec-text); exactly one of the two is set
  std::vector<std::string> overrides;
  std::string out_dir = ".";
  bool timestamps = false;   // prefix each metrics line with an RFC 3339 time (Katib medianstop)
  std::string tfevents_dir;  // non-empty: also write a TensorBoard event file there
  int64_t tfevents_every_steps = 0;  // > 0: also record `step_loss` every that many steps
  KfpOutputOptions kfp;  // Kubeflow Pipelines outputs (--kfp-output-metadata, --model-out, ...)
  // Non-empty: checkpoint into DIR/checkpoint.cajal every training.checkpoint_every_steps, at
  // each epoch's end and on SIGTERM, and resume from it when it exists (docs/cli.md).
  std::string checkpoint_dir;
  // > 0: the memory budget in bytes instead of what the process may use (--max_memory).
  int64_t max_memory = 0;
  // Print the memory estimate and the parameter count, check the budget, train nothing.
  bool dry_run = false;
  bool katib_push = false;  // --katib-push: report metrics to katib-db-manager (service/katib)
  KatibPushOptions katib;
};

// Exit codes: 0 success, 1 training failure, 2 bad spec or arguments (message on stderr), 143
// stopped by SIGTERM (after writing a checkpoint with --checkpoint_dir). `collective`: the
// ranks of a data-parallel run (null: one process); rank 0 alone prints and writes outputs.
// `term`: SIGTERM, taken (null: the signal's default action).
int RunTrain(const TrainOptions& options, Collective* collective = nullptr,
             const TermSignal* term = nullptr);

struct EvaluateOptions {
  std::string model_path;
  std::string spec_path;  // optional: data to evaluate on; default: the model's own spec
  std::vector<std::string> overrides;
  int64_t limit = 0;       // > 0: only the first `limit` examples of the evaluation set
  std::string logits_out;  // non-empty: write each example's logits and label here (JSON)
};
int RunEvaluate(const EvaluateOptions& options);

}  // namespace cajal

#endif  // CAJAL_SERVICE_CLI_TRAIN_COMMAND_H_
