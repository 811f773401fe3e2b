#include "service/cli/client_commands.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "cajal/v1/training_service.grpc.pb.h"
#include "core/io/model_file.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "service/cli/client_util.h"
#include "service/spec/spec_loader.h"

namespace cajal {
namespace {

std::string StateName(v1::JobState s) {
  return absl::AsciiStrToLower(v1::JobState_Name(s).substr(std::string("JOB_STATE_").size()));
}

std::string Summary(const v1::Job& j) {
  std::string line =
      absl::StrFormat("%s  %-10s  epoch %d  step %d/%d", j.id(), StateName(j.state()),
                      j.progress().epoch(), j.progress().step(), j.progress().total_steps());
  const std::map<std::string, double> metrics(j.latest_metrics().begin(), j.latest_metrics().end());
  for (const auto& [k, v] : metrics) absl::StrAppendFormat(&line, "  %s=%.4f", k, v);
  if (!j.error().empty()) absl::StrAppend(&line, "  error: ", j.error());
  return line;
}

void PrintJob(const ClientOptions& c, const v1::Job& j) { Print(c.json ? Json(j) : Summary(j)); }

// Groups metric points into the lines `cajal train` prints: one Katib line per epoch
// (loss, accuracy, val_loss, val_accuracy) and one line for the final metrics.
class LinePrinter {
 public:
  void Add(const v1::MetricPoint& p) {
    const bool epoch_metric = p.name() == "loss" || p.name() == "accuracy" ||
                              p.name() == "val_loss" || p.name() == "val_accuracy";
    if (!names_.empty() &&
        (epoch_metric != epoch_line_ || p.epoch() != epoch_ || p.step() != step_)) {
      Flush();
    }
    epoch_line_ = epoch_metric;
    epoch_ = p.epoch();
    step_ = p.step();
    names_.push_back(p.name());
    values_.push_back(p.value());
  }
  void Flush() {
    if (names_.empty()) return;
    std::string line = epoch_line_ ? absl::StrFormat("epoch=%d", epoch_) : "";
    for (size_t i = 0; i < names_.size(); ++i) {
      absl::StrAppendFormat(&line, "%s%s=%.4f", line.empty() ? "" : " ", names_[i], values_[i]);
    }
    Print(line);
    names_.clear();
    values_.clear();
  }

 private:
  bool epoch_line_ = true;
  int epoch_ = 0;
  int64_t step_ = 0;
  std::vector<std::string> names_;
  std::vector<double> values_;
};

// Streams a job's events until it is terminal, reconnecting with from_sequence after a broken
// stream. Returns the exit code for the job's outcome.
int Follow(const ClientOptions& c, v1::TrainingService::Stub* stub, const std::string& id) {
  int64_t next = 0;
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  std::string error;
  LinePrinter lines;
  for (int attempt = 0; attempt < 10; ++attempt) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, c, /*deadline=*/false);
    v1::WatchJobRequest req;
    req.set_id(id);
    req.set_from_sequence(next);
    auto reader = stub->WatchJob(&ctx, req);
    v1::JobEvent e;
    while (reader->Read(&e)) {
      next = e.sequence() + 1;
      if (c.json) {
        Print(Json(e));
      } else if (e.has_metric()) {
        lines.Add(e.metric());
      }
      if (e.kind_case() == v1::JobEvent::kState) {
        lines.Flush();
        state = e.state();
        if (!e.error().empty()) error = e.error();
      }
    }
    const grpc::Status s = reader->Finish();
    if (s.ok()) break;
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return RpcError(s);
    std::this_thread::sleep_for(std::chrono::milliseconds(200 << std::min(attempt, 4)));
  }
  lines.Flush();
  if (!c.json) Print(absl::StrCat("job ", id, " ", StateName(state)));
  if (state == v1::JOB_STATE_SUCCEEDED) return kExitOk;
  if (!error.empty()) std::fprintf(stderr, "cajal: job failed: %s\n", error.c_str());
  return kExitFailed;
}

}  // namespace

absl::Status ResolveToken(const std::string& token_file, ClientOptions* options) {
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in)
      return absl::InvalidArgumentError(absl::StrCat("--token_file ", token_file, ": cannot open"));
    std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    options->token = std::string(absl::StripAsciiWhitespace(token));
    if (options->token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--token_file ", token_file, " is empty"));
    }
    return absl::OkStatus();
  }
  if (const char* env = std::getenv("CAJAL_TOKEN"); env != nullptr) {
    options->token = std::string(absl::StripAsciiWhitespace(env));
  }
  return absl::OkStatus();
}

int RunSubmit(const ClientOptions& c, const SubmitOptions& s) {
  absl::StatusOr<v1::JobSpec> spec = LoadSpecFile(s.spec_path, s.overrides);
  if (!spec.ok()) {
    std::fprintf(stderr, "cajal: %s\n", std::string(spec.status().message()).c_str());
    return kExitBadArgs;
  }
  auto stub = Connect(c);
  v1::SubmitJobRequest req;
  *req.mutable_spec() = *spec;
  req.set_request_id(s.request_id);
  v1::Job job;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, c);
  const grpc::Status status = stub->SubmitJob(&ctx, req, &job);
  if (!status.ok()) return RpcError(status);
  if (c.json) {
    Print(Json(job));
  } else {
    Print(absl::StrCat("submitted job ", job.id()));
  }
  if (!s.wait) return kExitOk;
  return Follow(c, stub.get(), job.id());
}

// GetJob and CancelJob: a request naming the job, the job it answers printed.
template <typename Request>
int JobCall(const ClientOptions& c, const std::string& id,
            grpc::Status (v1::TrainingService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                              v1::Job*)) {
  auto stub = Connect(c);
  Request req;
  req.set_id(id);
  v1::Job job;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, c);
  const grpc::Status s = (stub.get()->*method)(&ctx, req, &job);
  if (!s.ok()) return RpcError(s);
  PrintJob(c, job);
  return kExitOk;
}

int RunGet(const ClientOptions& c, const std::string& id) {
  return JobCall(c, id, &v1::TrainingService::Stub::GetJob);
}

int RunList(const ClientOptions& c, const std::string& state, int page_size) {
  auto stub = Connect(c);
  v1::ListJobsRequest req;
  if (!state.empty()) {
    v1::JobState st;
    if (!v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(state), &st) ||
        st == v1::JOB_STATE_UNSPECIFIED) {
      std::fprintf(stderr,
                   "cajal: --state: unknown state \"%s\" (queued, running, succeeded, failed, "
                   "cancelling, cancelled)\n",
                   state.c_str());
      return kExitBadArgs;
    }
    req.set_state(st);
  }
  req.set_page_size(page_size);
  do {
    v1::ListJobsResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, c);
    const grpc::Status s = stub->ListJobs(&ctx, req, &resp);
    if (!s.ok()) return RpcError(s);
    for (const v1::Job& j : resp.jobs()) PrintJob(c, j);
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return kExitOk;
}

int RunWatch(const ClientOptions& c, const std::string& id) {
  auto stub = Connect(c);
  return Follow(c, stub.get(), id);
}

int RunCancel(const ClientOptions& c, const std::string& id) {
  return JobCall(c, id, &v1::TrainingService::Stub::CancelJob);
}

int RunDownload(const ClientOptions& c, const std::string& id, const std::string& out_path,
                const std::string& artifact) {
  auto stub = Connect(c);
  v1::DownloadModelRequest req;
  req.set_id(id);
  if (artifact == "tfevents") {
    req.set_artifact(v1::ARTIFACT_TFEVENTS);
  } else if (artifact == "onnx") {
    req.set_artifact(v1::ARTIFACT_ONNX);
  } else if (artifact != "model") {
    std::fprintf(stderr, "cajal: --artifact: \"%s\" is not model, onnx or tfevents\n",
                 artifact.c_str());
    return kExitBadArgs;
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx, c, /*deadline=*/false);
  auto reader = stub->DownloadModel(&ctx, req);
  std::string bytes;
  v1::ModelChunk chunk;
  int64_t total = -1;
  while (reader->Read(&chunk)) {
    if (chunk.offset() != static_cast<int64_t>(bytes.size())) {
      std::fprintf(stderr, "cajal: download: chunk at offset %lld, expected %zu\n",
                   static_cast<long long>(chunk.offset()), bytes.size());
      return kExitFailed;
    }
    bytes += chunk.data();
    total = chunk.total_size();
  }
  const grpc::Status s = reader->Finish();
  if (!s.ok()) return RpcError(s);
  if (total >= 0 && static_cast<int64_t>(bytes.size()) != total) {
    std::fprintf(stderr, "cajal: download: got %zu bytes of %lld\n", bytes.size(),
                 static_cast<long long>(total));
    return kExitFailed;
  }
  if (absl::Status w = WriteFileAtomically(out_path, bytes); !w.ok()) {
    std::fprintf(stderr, "cajal: %s\n", std::string(w.message()).c_str());
    return kExitFailed;
  }
  if (!c.json) Print(absl::StrCat("wrote ", bytes.size(), " bytes to ", out_path));
  return kExitOk;
}

int RunDelete(const ClientOptions& c, const std::string& id) {
  auto stub = Connect(c);
  v1::DeleteJobRequest req;
  req.set_id(id);
  google::protobuf::Empty empty;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, c);
  const grpc::Status s = stub->DeleteJob(&ctx, req, &empty);
  if (!s.ok()) return RpcError(s);
  if (!c.json) Print(absl::StrCat("deleted job ", id));
  return kExitOk;
}

}  // namespace cajal
