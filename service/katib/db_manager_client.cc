#include "service/katib/db_manager_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace cajal {
namespace {

namespace katib = ::api::v1::beta1;

constexpr absl::Duration kAttemptDeadline = absl::Seconds(10);
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(500);
constexpr absl::Duration kMaxBackoff = absl::Seconds(8);

// Codes a db-manager that is starting, restarting or not yet reachable answers with; the
// rest (INVALID_ARGUMENT for a malformed time, UNIMPLEMENTED for a wrong service) would fail
// the same way again.
bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::ABORTED;
}

std::chrono::system_clock::time_point Deadline(absl::Time t) { return absl::ToChronoTime(t); }

}  // namespace

std::string KatibTimestamp(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone());
}

std::string KatibValue(double value) { return absl::StrFormat("%.9g", value); }

absl::StatusOr<std::unique_ptr<KatibDbManagerClient>> KatibDbManagerClient::Connect(
    const KatibPushOptions& options) {
  if (options.address.empty()) {
    return absl::InvalidArgumentError("--katib-db-manager: the address must not be empty");
  }
  if (options.trial_name.empty()) {
    return absl::InvalidArgumentError(
        "--katib-push: no trial name; Katib sets KATIB_TRIAL_NAME in the trial's primary "
        "container, set it yourself to run outside Katib");
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--katib-push-timeout must be > 0, got ",
                                                   absl::FormatDuration(options.timeout)));
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(options.address, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(Deadline(absl::Now() + options.timeout))) {
    return absl::UnavailableError(absl::StrCat(
        "katib push: cannot reach katib-db-manager at ", options.address, " within ",
        absl::FormatDuration(options.timeout), " (trial ", options.trial_name,
        "); check --katib-db-manager, that Katib runs, and that the trial pod may reach "
        "the db-manager's port (NetworkPolicy, Istio)"));
  }
  return std::unique_ptr<KatibDbManagerClient>(
      new KatibDbManagerClient(options, katib::DBManager::NewStub(channel)));
}

absl::Status KatibDbManagerClient::Report(const std::vector<MetricObservation>& observations) {
  katib::ReportObservationLogRequest request;
  request.set_trial_name(options_.trial_name);
  for (const MetricObservation& o : observations) {
    katib::MetricLog* log = request.mutable_observation_log()->add_metric_logs();
    log->set_time_stamp(KatibTimestamp(o.time));
    log->mutable_metric()->set_name(o.name);
    log->mutable_metric()->set_value(KatibValue(o.value));
  }
  const absl::Time start = absl::Now();
  const absl::Time give_up = start + options_.timeout;
  absl::Duration backoff = kFirstBackoff;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(Deadline(std::min(absl::Now() + kAttemptDeadline, give_up)));
    katib::ReportObservationLogReply reply;
    ++attempts_;
    const grpc::Status s = stub_->ReportObservationLog(&context, request, &reply);
    if (s.ok()) return absl::OkStatus();
    const bool out_of_time = absl::Now() + backoff >= give_up;
    if (!Retryable(s.error_code()) || out_of_time) {
      const std::string message = absl::StrFormat(
          "katib push: ReportObservationLog to katib-db-manager at %s for trial %s failed "
          "after %d attempt%s in %s: %s: %s",
          options_.address, options_.trial_name, attempt, attempt == 1 ? "" : "s",
          absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))),
          absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
          s.error_message());
      if (Retryable(s.error_code())) return absl::UnavailableError(message);
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), message);
    }
    absl::SleepFor(backoff);
    backoff = std::min(2 * backoff, kMaxBackoff);
  }
}

}  // namespace cajal
