#include "service/tfevents/event_observer.h"

namespace cajal {

std::vector<ScalarValue> EventFileObserver::EpochScalars(const EpochReport& e,
                                                         bool classification) {
  std::vector<ScalarValue> values = {{"loss", e.loss}};
  if (classification) values.push_back({"accuracy", e.accuracy});
  if (e.has_val) {
    values.push_back({"val_loss", e.val_loss});
    if (classification) values.push_back({"val_accuracy", e.val_accuracy});
  }
  return values;
}

bool EventFileObserver::OnStep(const StepReport& s) {
  const bool go_on = next_ == nullptr || next_->OnStep(s);
  if (every_steps_ > 0 && s.step % every_steps_ == 0) Write(s.step, {{"step_loss", s.loss}});
  return go_on;
}

void EventFileObserver::OnEpoch(const EpochReport& e) {
  if (next_ != nullptr) next_->OnEpoch(e);
  Write(e.step, EpochScalars(e, classification_));
}

void EventFileObserver::Write(int64_t step, const std::vector<ScalarValue>& values) {
  if (!status_.ok()) return;
  status_ = writer_->WriteScalars(step, values);
}

}  // namespace cajal
