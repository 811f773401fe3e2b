// A TrainObserver that records a run's curves in a TensorBoard event file.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<EventWriter> writer, EventWriter::Create(dir));
//   EventFileObserver events(writer.get(), classification, /*every_steps=*/0, &printer);
//   ASSIGN_OR_RETURN(TrainResult result, job->Run(&events));
//   RETURN_IF_ERROR(events.status());
//
// Per epoch, one Event at the epoch's last global step with `loss` (and `accuracy` for
// classification), plus `val_loss` (and `val_accuracy`) when the epoch was validated. With
// `every_steps` > 0, also one Event with `step_loss` (that step's mean loss) every `every_steps`
// steps; it is not called `loss` so that the per-epoch curve (and Katib's `loss` metric, which
// matches tags by prefix) keeps only epoch means.
//
// Every call is forwarded to `next` (may be null) first; OnStep returns what `next` returns, so
// cancellation still works. A write error does not stop training: the first one is kept in
// status() and nothing more is written. Borrowed pointers must outlive the observer; it runs on
// the training thread, like any observer.
#ifndef CAJAL_SERVICE_TFEVENTS_EVENT_OBSERVER_H_
#define CAJAL_SERVICE_TFEVENTS_EVENT_OBSERVER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/train/job.h"
#include "service/tfevents/event_writer.h"

namespace cajal {

class EventFileObserver : public TrainObserver {
 public:
  EventFileObserver(EventWriter* writer, bool classification, int64_t every_steps,
                    TrainObserver* next)
      : writer_(writer), classification_(classification), every_steps_(every_steps), next_(next) {}

  bool OnStep(const StepReport& s) override;
  void OnEpoch(const EpochReport& e) override;
  void OnOptimizerMetric(int64_t step, const std::string& name, double value) override {
    if (next_ != nullptr) next_->OnOptimizerMetric(step, name, value);
  }

  // OK, or the first write error.
  const absl::Status& status() const { return status_; }

  // The values OnEpoch writes for `e`, in order.
  static std::vector<ScalarValue> EpochScalars(const EpochReport& e, bool classification);

 private:
  void Write(int64_t step, const std::vector<ScalarValue>& values);

  EventWriter* writer_;
  bool classification_;
  int64_t every_steps_;
  TrainObserver* next_;
  absl::Status status_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_TFEVENTS_EVENT_OBSERVER_H_
