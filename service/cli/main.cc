// cajal: the command line. `train`, `evaluate` and `export` run in-process.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "absl/time/time.h"
#include "core/collective/mpi/mpi_collective.h"
#include "core/train/memory.h"
#if CAJAL_HAVE_NCCL
#include "core/collective/nccl/nccl_collective.h"
#endif
#include "service/cli/client_commands.h"
#include "service/cli/dataset_commands.h"
#include "service/cli/export_command.h"
#include "service/cli/train_command.h"

namespace {

// `cajal upload`, `cajal datasets`, `cajal delete-dataset` and their arguments.
struct DatasetCommands {
  CLI::App* upload = nullptr;
  CLI::App* list = nullptr;
  CLI::App* remove = nullptr;
  std::string path, name, id;
};

void AddDatasetCommands(CLI::App* app, DatasetCommands* c) {
  c->upload = app->add_subcommand("upload", "Upload a data file to cajald; prints the data set id");
  c->upload->add_option("file", c->path, "The file (CSV, IDX, gzip or raw)")->required();
  c->upload->add_option("--name", c->name, "The data set's name (default: the file's name)");
  c->list = app->add_subcommand("datasets", "List the uploaded data sets");
  c->remove = app->add_subcommand("delete-dataset", "Delete an uploaded data set");
  c->remove->add_option("id", c->id, "Data set id")->required();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cajal: train neural networks (in-process, or through a cajald server)"};
  app.require_subcommand(1);
  // Global flags (--server, --output, --timeout, --token_file, --tls_*) are accepted before or
  // after the subcommand, as kubectl users expect: `cajal submit --server host:port ...`.
  app.fallthrough();

  cajal::TrainOptions train;
  CLI::App* train_cmd = app.add_subcommand("train", "Train a model from a job spec and exit");
  CLI::Option* spec_file =
      train_cmd->add_option("--spec", train.spec_path, "Job spec file (YAML or JSON)");
  train_cmd
      ->add_option("--spec-text", train.spec_text,
                   "The job spec itself, as YAML or JSON text (a KFP string parameter); "
                   "instead of --spec")
      ->excludes(spec_file);
  train_cmd
      ->add_option("--set", train.overrides,
                   "Override a spec field: path=value, e.g. model.layers.0.dense.units=512 "
                   "(repeatable)")
      ->take_all();
  train_cmd->add_option("--out", train.out_dir, "Directory for model.cajal and metrics.json")
      ->capture_default_str();
  train_cmd->add_flag("--timestamps", train.timestamps,
                      "Prefix each metrics line with an RFC 3339 timestamp (Katib medianstop)");
  train_cmd->add_option("--tfevents_dir", train.tfevents_dir,
                        "Also write the training curves as a TensorBoard event file in this "
                        "directory (TensorBoard, Katib's TensorFlowEvent collector)");
  train_cmd
      ->add_option("--tfevents_every_steps", train.tfevents_every_steps,
                   "With --tfevents_dir: also record step_loss every N steps (0: epochs only)")
      ->check(CLI::NonNegativeNumber);
  train_cmd->add_option("--kfp-output-metadata", train.kfp.output_metadata_path,
                        "Write the final metrics as KFP v2 ExecutorOutput JSON here "
                        "(/tmp/kfp_outputs/output_metadata.json in a KFP v2 step)");
  train_cmd
      ->add_option("--kfp-metrics-artifact", train.kfp.metrics_artifact,
                   "Output artifact (system.Metrics) whose metadata gets the metrics")
      ->capture_default_str()
      ->check([](const std::string& s) { return s.empty() ? "must not be empty" : ""; });
  train_cmd->add_option("--mlpipeline-metrics", train.kfp.mlpipeline_metrics_path,
                        "Write the final metrics as KFP v1 MLPipeline Metrics JSON here");
  train_cmd->add_option("--model-out", train.kfp.model_out_path,
                        "Also copy model.cajal to this path (a KFP {outputPath: model})");
  train_cmd->add_flag("--dry-run,--dry_run", train.dry_run,
                      "Print the job's memory estimate and parameter count, check it against "
                      "the budget and exit (0: fits, 2: does not) without training");
  train_cmd
      ->add_option(
          "--max_memory",
          [&train](const CLI::results_t& r) {
            absl::StatusOr<int64_t> bytes = cajal::ParseBytes(r[0]);
            if (!bytes.ok() || *bytes <= 0) {
              throw CLI::ValidationError(
                  "--max_memory",
                  bytes.ok() ? "must be > 0" : std::string(bytes.status().message()));
            }
            train.max_memory = *bytes;
            return true;
          },
          "Memory budget of the job (e.g. 4GB, 512MiB); default: what the process may use "
          "(cgroup memory.max, else available memory), less 10%")
      ->type_name("SIZE");
  train_cmd->add_option("--checkpoint_dir", train.checkpoint_dir,
                        "Checkpoint into DIR/checkpoint.cajal (every "
                        "training.checkpoint_every_steps, each epoch, on SIGTERM) and resume "
                        "from it when it exists; under mpirun a directory every rank shares");
  train_cmd->add_flag("--katib-push", train.katib_push,
                      "Report each epoch's metrics to Katib's db-manager (Experiments with "
                      "metricsCollectorSpec.collector.kind: Push)");
  train_cmd
      ->add_option("--katib-db-manager", train.katib.address,
                   "host:port of katib-db-manager, with --katib-push")
      ->capture_default_str();
  train_cmd
      ->add_option("--katib-trial-name", train.katib.trial_name,
                   "Trial the metrics belong to, with --katib-push (default: $KATIB_TRIAL_NAME, "
                   "which Katib sets)")
      ->envname("KATIB_TRIAL_NAME");
  double katib_timeout_s = absl::ToDoubleSeconds(train.katib.timeout);
  train_cmd
      ->add_option("--katib-push-timeout", katib_timeout_s,
                   "Seconds to wait for katib-db-manager at start and for each report, retries "
                   "included; then the trial fails")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);

  cajal::EvaluateOptions eval;
  CLI::App* eval_cmd = app.add_subcommand("evaluate", "Report loss and accuracy of a saved model");
  eval_cmd->add_option("--model", eval.model_path, "Model file (model.cajal)")->required();
  eval_cmd->add_option("--spec", eval.spec_path,
                       "Job spec whose data to evaluate on (default: the model's own)");
  eval_cmd->add_option("--set", eval.overrides, "Override a spec field (repeatable)")->take_all();
  eval_cmd
      ->add_option("--limit", eval.limit,
                   "Evaluate only the first N examples of the test set (or of the training "
                   "examples when there is no test set)")
      ->check(CLI::PositiveNumber);
  eval_cmd->add_option("--logits_out", eval.logits_out,
                       "Also write each example's logits and label to this file (JSON)");

  cajal::ExportOptions export_opts;
  CLI::App* export_cmd =
      app.add_subcommand("export", "Export a trained model for serving (ONNX, opset 17)");
  export_cmd->add_option("--model", export_opts.model_path, "Model file (model.cajal)")->required();
  export_cmd->add_option("--format", export_opts.format, "Output format")
      ->capture_default_str()
      ->check(CLI::IsMember({"onnx"}));
  export_cmd->add_option("-o,--output_file", export_opts.out_path, "Where to write the model")
      ->required();

  // The gRPC client commands.
  cajal::ClientOptions client;
  app.add_option("--server", client.server, "cajald address (host:port; default: $CAJAL_SERVER)")
      ->envname("CAJAL_SERVER")
      ->capture_default_str();
  app.add_option(
         "--output",
         [&client](const CLI::results_t& r) {
           client.json = r[0] == "json";
           return r[0] == "json" || r[0] == "text";
         },
         "Output format: text (for people) or json (protobuf JSON, for scripts)")
      ->type_name("text|json");
  app.add_option("--timeout", client.timeout_s, "Seconds to wait for each call")
      ->capture_default_str();
  std::string token_file;
  app.add_option("--token_file", token_file,
                 "File with the server's token (default: $CAJAL_TOKEN), sent as a bearer token");
  app.add_option("--tls_ca", client.tls_ca, "PEM CA certificate to verify the server (TLS)");
  app.add_option("--tls_cert", client.tls_cert, "PEM client certificate (mTLS), with --tls_key");
  app.add_option("--tls_key", client.tls_key, "PEM private key of --tls_cert");
  cajal::SubmitOptions submit;
  CLI::App* submit_cmd = app.add_subcommand("submit", "Submit a job to cajald");
  submit_cmd->add_option("--spec", submit.spec_path, "Job spec (YAML or JSON)")->required();
  submit_cmd->add_option("--set", submit.overrides, "Override a spec field (repeatable)")
      ->take_all();
  submit_cmd->add_option("--request_id", submit.request_id,
                         "Idempotency key: a retry with the same key returns the same job");
  submit_cmd->add_flag("--wait", submit.wait,
                       "Follow the job to its end, printing metrics lines; exit with its outcome");
  std::string job_id, out_path, state;
  int page_size = 50;
  CLI::App* get_cmd = app.add_subcommand("get", "Show a job");
  get_cmd->add_option("id", job_id, "Job id")->required();
  CLI::App* list_cmd = app.add_subcommand("list", "List jobs, newest first");
  list_cmd->add_option("--state", state, "Only jobs in this state (queued, running, ...)");
  list_cmd->add_option("--page_size", page_size, "Jobs per request")->capture_default_str();
  CLI::App* watch_cmd = app.add_subcommand("watch", "Follow a job's metrics until it ends");
  watch_cmd->add_option("id", job_id, "Job id")->required();
  CLI::App* cancel_cmd = app.add_subcommand("cancel", "Cancel a queued or running job");
  cancel_cmd->add_option("id", job_id, "Job id")->required();
  CLI::App* download_cmd = app.add_subcommand("download", "Download a job's trained model");
  download_cmd->add_option("id", job_id, "Job id")->required();
  download_cmd->add_option("-o,--output_file", out_path, "Where to write the artifact")->required();
  std::string artifact = "model";
  download_cmd
      ->add_option("--artifact", artifact,
                   "model (model.cajal), onnx (the model exported to ONNX, opset 17) or "
                   "tfevents (the job's TensorBoard event files)")
      ->capture_default_str();
  CLI::App* delete_cmd = app.add_subcommand("delete", "Delete a finished job and its files");
  delete_cmd->add_option("id", job_id, "Job id")->required();

  DatasetCommands datasets;
  AddDatasetCommands(&app, &datasets);

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
  if (train_cmd->parsed()) {
    train.katib.timeout = absl::Seconds(katib_timeout_s);
    // SIGTERM stops the run at a step boundary; taken before MPI starts its threads.
    cajal::TermSignal term;
    // Under mpirun (or the MPI Operator's launcher) the ranks train one model together.
    std::unique_ptr<cajal::Collective> collective;
    if (cajal::LaunchedByMpi()) {
      absl::StatusOr<std::unique_ptr<cajal::Collective>> c = cajal::CreateMpiCollective();
      if (!c.ok()) {
        std::fprintf(stderr, "cajal: %s\n", std::string(c.status().message()).c_str());
        return 1;
      }
      collective = *std::move(c);
#if CAJAL_HAVE_NCCL
      // With GPUs: each rank on its own GPU, device buffers reduced by NCCL.
      collective = cajal::WrapForGpus(std::move(collective));
#endif
    }
    // The core returns statuses; this is the last guard that no input ends in an abort.
    try {
      return cajal::RunTrain(train, collective.get(), &term);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cajal: training failed: %s\n", e.what());
      return 1;
    }
  }
  if (eval_cmd->parsed()) return cajal::RunEvaluate(eval);
  if (export_cmd->parsed()) return cajal::RunExport(export_opts);
  if (absl::Status s = cajal::ResolveToken(token_file, &client); !s.ok()) {
    std::fprintf(stderr, "cajal: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (submit_cmd->parsed()) return cajal::RunSubmit(client, submit);
  if (get_cmd->parsed()) return cajal::RunGet(client, job_id);
  if (list_cmd->parsed()) return cajal::RunList(client, state, page_size);
  if (watch_cmd->parsed()) return cajal::RunWatch(client, job_id);
  if (cancel_cmd->parsed()) return cajal::RunCancel(client, job_id);
  if (download_cmd->parsed()) return cajal::RunDownload(client, job_id, out_path, artifact);
  if (delete_cmd->parsed()) return cajal::RunDelete(client, job_id);
  if (datasets.upload->parsed()) return cajal::RunUpload(client, datasets.path, datasets.name);
  if (datasets.list->parsed()) return cajal::RunListDatasets(client);
  if (datasets.remove->parsed()) return cajal::RunDeleteDataset(client, datasets.id);
  return 2;
}
