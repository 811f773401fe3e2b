// Load generator for cajald (never a test): GetJob latency and throughput, and many
// concurrent WatchJob streams. Drives a real server over loopback.
//
//   service_bench latency --server 127.0.0.1:50051 --clients 16 --seconds 5
//   service_bench watchers --server 127.0.0.1:50051 --streams 1000 --server_pid PID
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "cajal/v1/training_service.grpc.pb.h"
#include "service/spec/spec_loader.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kQuickSpec[] = R"(
model: {layers: [{dense: {units: 8}}, {activation: {kind: tanh}}, {dense: {units: 2}}]}
data: {train: {builtin: xor}}
optimizer: {kind: adam}
training: {epochs: 1, batch_size: 4, threads: 1}
)";
constexpr char kLongSpec[] = R"(
model: {layers: [{dense: {units: 64}}, {activation: {kind: relu}}, {dense: {units: 10}}]}
data: {train: {builtin: fashion-mnist}, normalize: scale}
optimizer: {kind: sgd}
training: {epochs: 1000, batch_size: 32, threads: 1, log_every_steps: 50}
)";

std::string Submit(cajal::v1::TrainingService::Stub* stub, const char* yaml) {
  cajal::v1::SubmitJobRequest req;
  *req.mutable_spec() = *cajal::ParseSpec(yaml);
  cajal::v1::Job job;
  grpc::ClientContext ctx;
  const grpc::Status s = stub->SubmitJob(&ctx, req, &job);
  if (!s.ok()) {
    std::fprintf(stderr, "submit: %s\n", s.error_message().c_str());
    std::exit(1);
  }
  return job.id();
}

double RssMb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1;
}

int Latency(const std::string& server, int clients, double seconds) {
  auto stub = cajal::v1::TrainingService::NewStub(
      grpc::CreateChannel(server, grpc::InsecureChannelCredentials()));
  const std::string id = Submit(stub.get(), kQuickSpec);
  std::vector<std::vector<double>> latencies(clients);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  const Clock::time_point end =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      // Each client has its own channel, as separate processes would.
      grpc::ChannelArguments args;
      args.SetInt("grpc.channel_id", c);  // distinct channels, no subchannel sharing
      auto own = cajal::v1::TrainingService::NewStub(
          grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args));
      cajal::v1::GetJobRequest req;
      req.set_id(id);
      for (int warm = 0; warm < 100; ++warm) {
        grpc::ClientContext ctx;
        cajal::v1::Job job;
        own->GetJob(&ctx, req, &job);
      }
      while (Clock::now() < end) {
        grpc::ClientContext ctx;
        cajal::v1::Job job;
        const Clock::time_point t0 = Clock::now();
        const grpc::Status s = own->GetJob(&ctx, req, &job);
        latencies[c].push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        if (!s.ok()) ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all[static_cast<size_t>(p * (all.size() - 1))]; };
  std::printf(
      "bench=get_job clients=%d calls=%zu errors=%d qps=%.0f p50_us=%.0f p99_us=%.0f "
      "max_us=%.0f\n",
      clients, all.size(), errors.load(), all.size() / seconds, pct(0.5), pct(0.99), all.back());
  return errors.load() == 0 ? 0 : 1;
}

int Watchers(const std::string& server, int streams, int pid) {
  auto stub = cajal::v1::TrainingService::NewStub(
      grpc::CreateChannel(server, grpc::InsecureChannelCredentials()));
  const std::string id = Submit(stub.get(), kLongSpec);
  // Wait until it runs.
  for (int i = 0; i < 600; ++i) {
    grpc::ClientContext ctx;
    cajal::v1::GetJobRequest req;
    req.set_id(id);
    cajal::v1::Job job;
    stub->GetJob(&ctx, req, &job);
    if (job.state() == cajal::v1::JOB_STATE_RUNNING) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double before = RssMb(pid);
  struct Stream {
    grpc::ClientContext ctx;
    cajal::v1::JobEvent event;
    std::unique_ptr<grpc::ClientAsyncReader<cajal::v1::JobEvent>> reader;
    int64_t received = 0;
  };
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<Stream>> all;
  cajal::v1::WatchJobRequest req;
  req.set_id(id);
  const Clock::time_point t0 = Clock::now();
  for (int i = 0; i < streams; ++i) {
    all.push_back(std::make_unique<Stream>());
    Stream* s = all.back().get();
    s->reader = stub->AsyncWatchJob(&s->ctx, req, &cq, s);
  }
  // Tag = stream; the first completion is the call start, later ones reads.
  std::vector<bool> started(streams, false);
  int with_events = 0;
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(60);
  while (with_events < streams && std::chrono::system_clock::now() < deadline) {
    void* tag;
    bool ok;
    if (cq.AsyncNext(&tag, &ok, deadline) != grpc::CompletionQueue::GOT_EVENT) break;
    Stream* s = static_cast<Stream*>(tag);
    const size_t idx =
        std::find_if(all.begin(), all.end(), [&](const auto& p) { return p.get() == s; }) -
        all.begin();
    if (!ok) continue;
    if (!started[idx]) {
      started[idx] = true;
    } else if (++s->received == 2) {
      ++with_events;  // saw the history and is now live
    }
    s->reader->Read(&s->event, s);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const double during = RssMb(pid);
  std::printf(
      "bench=watchers streams=%d streams_live=%d seconds_to_live=%.2f "
      "server_rss_before_mb=%.1f server_rss_with_streams_mb=%.1f per_stream_kb=%.1f\n",
      streams, with_events, seconds, before, during,
      (during - before) * 1024.0 / std::max(1, streams));
  for (auto& s : all) s->ctx.TryCancel();
  grpc::ClientContext ctx;
  cajal::v1::CancelJobRequest cancel;
  cancel.set_id(id);
  cajal::v1::Job job;
  stub->CancelJob(&ctx, cancel, &job);
  // Drain.
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  std::printf("bench=watchers server_rss_after_mb=%.1f\n", RssMb(pid));
  return with_events == streams ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"service_bench: load for cajald"};
  app.require_subcommand(1);
  std::string server = "127.0.0.1:50051";
  app.add_option("--server", server)->capture_default_str();
  int clients = 1, streams = 1000, pid = 0;
  double seconds = 5;
  CLI::App* lat = app.add_subcommand("latency", "GetJob latency and QPS");
  lat->add_option("--clients", clients)->capture_default_str();
  lat->add_option("--seconds", seconds)->capture_default_str();
  CLI::App* wat = app.add_subcommand("watchers", "Many WatchJob streams on one running job");
  wat->add_option("--streams", streams)->capture_default_str();
  wat->add_option("--server_pid", pid, "cajald's pid, to read its RSS")->required();
  CLI11_PARSE(app, argc, argv);
  if (lat->parsed()) return Latency(server, clients, seconds);
  return Watchers(server, streams, pid);
}
