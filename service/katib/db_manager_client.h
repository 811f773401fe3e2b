// A client of Katib's DBManager service (the `katib-db-manager` Service): reports a trial's
// metric observations the way Katib's Push collector expects the training code to, with
// `api.v1.beta1.DBManager/ReportObservationLog` (proto/katib/v1beta1/api.proto).
//
//   KatibPushOptions options;                      // address, trial name, timeout
//   options.trial_name = "mlp-push-x7k2p9qz";      // the pod's KATIB_TRIAL_NAME
//   ASSIGN_OR_RETURN(std::unique_ptr<KatibDbManagerClient> client,
//                    KatibDbManagerClient::Connect(options));
//   RETURN_IF_ERROR(client->Report({{"val_accuracy", 0.8731, absl::Now()}}));
//
// Failures are retried, never ignored: Connect waits up to `timeout` for the channel, and
// Report retries a call that failed with UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED or
// ABORTED (a db-manager restarting, an Istio sidecar not ready yet) with exponential backoff
// (0.5 s doubling to 8 s, each attempt with a 10 s deadline) until `timeout` has passed since
// the first attempt. Any other code, or the time running out, is returned as kUnavailable
// (unreachable) or the call's own code, with a message naming the address, the trial, the
// number of attempts and gRPC's error. One client serves one training thread; it is not
// thread-safe.
#ifndef CAJAL_SERVICE_KATIB_DB_MANAGER_CLIENT_H_
#define CAJAL_SERVICE_KATIB_DB_MANAGER_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "katib/v1beta1/api.grpc.pb.h"

namespace cajal {

// Katib's default: the db-manager Service in the `kubeflow` namespace, port 6789 (the Python
// SDK's DEFAULT_DB_MANAGER_ADDRESS).
inline constexpr char kDefaultKatibDbManager[] = "katib-db-manager.kubeflow:6789";

struct KatibPushOptions {
  std::string address = kDefaultKatibDbManager;  // host:port of katib-db-manager
  std::string trial_name;                        // required: the Trial the metrics belong to
  absl::Duration timeout = absl::Seconds(60);    // connect, and each Report with its retries
};

struct MetricObservation {
  std::string name;
  double value = 0;
  absl::Time time;
};

// `2026-11-26T22:16:50.123456Z`: RFC 3339 in UTC with microseconds, which Katib's db-manager
// parses with Go's time.RFC3339Nano.
std::string KatibTimestamp(absl::Time time);
// The value as Katib stores it: text with 9 significant digits, parseable as a float.
std::string KatibValue(double value);

class KatibDbManagerClient {
 public:
  // kInvalidArgument for an empty address or trial name or a timeout <= 0; kUnavailable when
  // no connection came up within the timeout.
  static absl::StatusOr<std::unique_ptr<KatibDbManagerClient>> Connect(
      const KatibPushOptions& options);

  // One ReportObservationLog call with every observation, retried as described above.
  absl::Status Report(const std::vector<MetricObservation>& observations);

  // Calls made so far, retries included.
  int64_t attempts() const { return attempts_; }

 private:
  KatibDbManagerClient(KatibPushOptions options,
                       std::unique_ptr<api::v1::beta1::DBManager::Stub> stub)
      : options_(std::move(options)), stub_(std::move(stub)) {}

  KatibPushOptions options_;
  std::unique_ptr<api::v1::beta1::DBManager::Stub> stub_;
  int64_t attempts_ = 0;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_KATIB_DB_MANAGER_CLIENT_H_
