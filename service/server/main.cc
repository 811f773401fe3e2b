// cajald: the cajal training server. Flags fill ServerOptions; signals are taken with sigwait
// on a thread; SIGTERM or SIGINT shuts down gracefully within --shutdown_grace.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "core/train/memory.h"
#include "service/server/logging.h"
#include "service/server/server.h"

namespace {

// Where jobs may read data, and the limits of uploads (docs/security.md).
void AddDataFlags(CLI::App* app, cajal::ServerOptions* o) {
  app->add_option("--data_roots", o->data_roots,
                  "Directories beneath which job specs may name data files, comma-separated "
                  "(default: DATA_DIR/datasets and the builtin data directory)")
      ->delimiter(',');
  app->add_option("--max_dataset_bytes", o->max_dataset_bytes,
                  "Largest data set UploadDataset accepts, bytes")
      ->capture_default_str();
  app->add_option("--max_datasets_bytes", o->max_datasets_bytes,
                  "Quota: all uploaded data sets together, bytes")
      ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  cajal::ServerOptions o;
  o.metrics_port = 9464;
  std::string grace = "20s";
  std::string log_format = "text";
  CLI::App app{"cajald: the cajal training server (gRPC cajal.v1.TrainingService)"};
  app.add_option("--host", o.host, "Address to listen on")->capture_default_str();
  app.add_option("--port", o.port, "gRPC port (0: pick a free one and print it)")
      ->capture_default_str();
  app.add_option("--metrics_port", o.metrics_port,
                 "HTTP port for Prometheus /metrics, /healthz and /readyz (0: pick a free one "
                 "and print it; -1: none)")
      ->capture_default_str();
  app.add_option("--log_format", log_format,
                 "stderr log lines: text, or json (one object per line: time, level, message, "
                 "job_id, ...)")
      ->capture_default_str();
  app.add_option("--data_dir", o.data_dir, "SQLite store (cajal.db) and job files (jobs/ID/)")
      ->capture_default_str();
  app.add_option("--max_concurrent_jobs", o.max_concurrent_jobs, "Jobs trained at once")
      ->capture_default_str();
  app.add_option("--max_queued_jobs", o.max_queued_jobs,
                 "Queued jobs beyond which SubmitJob is RESOURCE_EXHAUSTED")
      ->capture_default_str();
  app.add_option("--threads_per_job", o.threads_per_job,
                 "Compute threads per job (0: the available cores divided among concurrent jobs)")
      ->capture_default_str();
  std::string max_job_memory;
  app.add_option("--max_job_memory", max_job_memory,
                 "Memory the jobs may use together: 8GB, 512MiB, bytes (default: what the "
                 "process may use at start, less 10% and the server's own baseline)");
  app.add_option("--gpus", o.gpus, "GPUs to run jobs on, one job each (-1: all visible)")
      ->capture_default_str();
  app.add_option("--crash_loop_limit", o.crash_loop_limit,
                 "A job that was running when the server stopped uncleanly this many times in a "
                 "row is FAILED instead of run again (0: never)")
      ->capture_default_str();
  app.add_option("--max_message_bytes", o.max_message_bytes, "Largest request accepted, bytes")
      ->capture_default_str();
  app.add_option("--shutdown_grace", grace,
                 "How long to drain on SIGTERM: a duration (20s, 1m30s) or seconds (20)")
      ->capture_default_str();
  app.add_option("--max_watchers_per_job", o.max_watchers_per_job,
                 "WatchJob streams one job may have at once")
      ->capture_default_str();
  app.add_option("--auth_token_file", o.auth_token_file,
                 "File holding a token: every call but health needs `authorization: Bearer "
                 "<token>`");
  app.add_option("--tls_cert", o.tls_cert, "PEM certificate chain: serve TLS (with --tls_key)");
  app.add_option("--tls_key", o.tls_key, "PEM private key for --tls_cert");
  app.add_option("--tls_client_ca", o.tls_client_ca,
                 "PEM CA certificate: require client certificates signed by it (mTLS)");
  AddDataFlags(&app, &o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  double grace_number = 0;
  if (absl::SimpleAtod(grace, &grace_number)) {
    o.shutdown_grace = absl::Seconds(grace_number);
  } else if (!absl::ParseDuration(grace, &o.shutdown_grace)) {
    std::fprintf(stderr, "cajald: --shutdown_grace: not a duration: \"%s\" (e.g. 20s)\n",
                 grace.c_str());
    return 2;
  }
  if (!max_job_memory.empty()) {
    absl::StatusOr<int64_t> bytes = cajal::ParseBytes(max_job_memory);
    if (!bytes.ok() || *bytes <= 0) {
      std::fprintf(
          stderr, "cajald: --max_job_memory: %s\n",
          bytes.ok() ? "must be more than 0 bytes" : std::string(bytes.status().message()).c_str());
      return 2;
    }
    o.max_job_memory = *bytes;
  }
  const double grace_s = absl::ToDoubleSeconds(o.shutdown_grace);
  absl::StatusOr<cajal::LogFormat> format = cajal::ParseLogFormat(log_format);
  if (!format.ok()) {
    std::fprintf(stderr, "cajald: %s\n", std::string(format.status().message()).c_str());
    return 2;
  }
  cajal::SetLogFormat(*format);

  // Block the signals in every thread; one thread takes them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<cajal::Server>> server = cajal::Server::BuildAndStart(o);
  if (!server.ok()) {
    cajal::Log(cajal::LogLevel::kError, server.status().message());
    return server.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  cajal::Log(cajal::LogLevel::kInfo,
             absl::StrCat("serving cajal.v1.TrainingService on ", o.host, ":", (*server)->port(),
                          ", data in ", o.data_dir));
  if (o.metrics_port >= 0) {
    cajal::Log(cajal::LogLevel::kInfo,
               absl::StrCat("serving metrics on http://", o.host, ":", (*server)->metrics_port(),
                            "/metrics (and /healthz, /readyz)"));
  }

  absl::Notification stop;
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    cajal::Log(cajal::LogLevel::kInfo,
               absl::StrCat("signal ", sig, ", shutting down (grace ", grace_s, " s)"));
    stop.Notify();
    // A second signal, or the grace running out, ends the process at once (still exit 0:
    // stored jobs resume on the next start).
    struct timespec timeout = {static_cast<time_t>(grace_s), 0};
    if (sigtimedwait(&signals, nullptr, &timeout) >= 0 || errno == EAGAIN) {
      cajal::Log(cajal::LogLevel::kWarning, "exiting now, before the drain finished");
      std::_Exit(0);
    }
  });
  stop.WaitForNotification();
  (*server)->Shutdown(o.shutdown_grace);
  cajal::Log(cajal::LogLevel::kInfo, "stopped");
  std::_Exit(0);
}
