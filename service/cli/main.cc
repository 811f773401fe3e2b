// cajal: the command line. `train` and `evaluate` run the core in-process.
#include <CLI/CLI.hpp>

#include "service/cli/train_command.h"

int main(int argc, char** argv) {
  CLI::App app{"cajal: train neural networks (in-process, or through a cajald server)"};
  app.require_subcommand(1);

  cajal::TrainOptions train;
  CLI::App* train_cmd = app.add_subcommand("train", "Train a model from a job spec and exit");
  train_cmd->add_option("--spec", train.spec_path, "Job spec (YAML or JSON)")->required();
  train_cmd->add_option("--set", train.overrides,
                        "Override a spec field: path=value, e.g. model.layers.0.dense.units=512 "
                        "(repeatable)")
      ->take_all();
  train_cmd->add_option("--out", train.out_dir, "Directory for model.cajal and metrics.json")
      ->capture_default_str();
  train_cmd->add_flag("--timestamps", train.timestamps,
                      "Prefix each metrics line with an RFC 3339 timestamp (Katib medianstop)");

  cajal::EvaluateOptions eval;
  CLI::App* eval_cmd = app.add_subcommand("evaluate", "Report loss and accuracy of a saved model");
  eval_cmd->add_option("--model", eval.model_path, "Model file (model.cajal)")->required();
  eval_cmd->add_option("--spec", eval.spec_path,
                       "Job spec whose data to evaluate on (default: the model's own)");
  eval_cmd->add_option("--set", eval.overrides, "Override a spec field (repeatable)")->take_all();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (train_cmd->parsed()) return cajal::RunTrain(train);
  if (eval_cmd->parsed()) return cajal::RunEvaluate(eval);
  return 2;
}
