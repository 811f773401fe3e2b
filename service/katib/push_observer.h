// A TrainObserver that pushes each epoch's metrics to Katib (`cajal train --katib-push`), for
// Experiments with `metricsCollectorSpec.collector.kind: Push`: no metrics-collector sidecar,
// no `sh -c` wrapper around the command, no stdout parsing (docs/kubeflow.md).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<KatibPushObserver> katib,
//                    KatibPushObserver::Start(options, classification, &printer));
//   ASSIGN_OR_RETURN(TrainResult result, job->Run(katib.get()));
//   RETURN_IF_ERROR(katib->status());
//   RETURN_IF_ERROR(katib->ReportFinal({{"test_accuracy", result.test.accuracy}}));
//
// Per epoch, one ReportObservationLog call with `loss` (and `accuracy` for classification),
// plus `val_loss` (and `val_accuracy`) when the epoch was validated, all stamped with the time
// the epoch ended: the names and values of the epoch's Katib line. Every call is forwarded to
// `next` (may be null) first. A report that fails after the client's retries is kept in
// status(), nothing more is sent, and OnStep returns false from then on, so training stops at
// the next step boundary and the caller fails the trial instead of training on unobserved.
// Borrowed pointers must outlive the observer; it runs on the training thread.
#ifndef CAJAL_SERVICE_KATIB_PUSH_OBSERVER_H_
#define CAJAL_SERVICE_KATIB_PUSH_OBSERVER_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/train/job.h"
#include "service/katib/db_manager_client.h"

namespace cajal {

class KatibPushObserver : public TrainObserver {
 public:
  KatibPushObserver(KatibDbManagerClient* client, bool classification, TrainObserver* next)
      : client_(client), classification_(classification), next_(next) {}

  // Connects to the db-manager (KatibDbManagerClient::Connect and its errors) and returns an
  // observer that owns the client.
  static absl::StatusOr<std::unique_ptr<KatibPushObserver>> Start(const KatibPushOptions& options,
                                                                  bool classification,
                                                                  TrainObserver* next);

  bool OnStep(const StepReport& s) override;
  void OnEpoch(const EpochReport& e) override;
  void OnOptimizerMetric(int64_t step, const std::string& name, double value) override {
    if (next_ != nullptr) next_->OnOptimizerMetric(step, name, value);
  }

  // Reports the run's final values (test_loss, test_accuracy) in one call; returns status()
  // unchanged when an earlier report failed.
  absl::Status ReportFinal(const std::vector<std::pair<std::string, double>>& metrics);

  // OK, or the first failed report.
  const absl::Status& status() const { return status_; }

  // What OnEpoch reports for `e`, in order, stamped `time`.
  static std::vector<MetricObservation> EpochObservations(const EpochReport& e, bool classification,
                                                          absl::Time time);

 private:
  void Report(const std::vector<MetricObservation>& observations);

  std::unique_ptr<KatibDbManagerClient> owned_client_;  // set by Start
  KatibDbManagerClient* client_;
  bool classification_;
  TrainObserver* next_;
  absl::Status status_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_KATIB_PUSH_OBSERVER_H_
