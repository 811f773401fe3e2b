#include "service/katib/push_observer.h"

#include "absl/time/clock.h"

namespace cajal {

absl::StatusOr<std::unique_ptr<KatibPushObserver>> KatibPushObserver::Start(
    const KatibPushOptions& options, bool classification, TrainObserver* next) {
  absl::StatusOr<std::unique_ptr<KatibDbManagerClient>> client =
      KatibDbManagerClient::Connect(options);
  if (!client.ok()) return client.status();
  auto observer = std::make_unique<KatibPushObserver>(client->get(), classification, next);
  observer->owned_client_ = *std::move(client);
  return observer;
}

std::vector<MetricObservation> KatibPushObserver::EpochObservations(const EpochReport& e,
                                                                    bool classification,
                                                                    absl::Time time) {
  std::vector<MetricObservation> out = {{"loss", e.loss, time}};
  if (classification) out.push_back({"accuracy", e.accuracy, time});
  if (e.has_val) {
    out.push_back({"val_loss", e.val_loss, time});
    if (classification) out.push_back({"val_accuracy", e.val_accuracy, time});
  }
  return out;
}

bool KatibPushObserver::OnStep(const StepReport& s) {
  const bool go_on = next_ == nullptr || next_->OnStep(s);
  return go_on && status_.ok();
}

void KatibPushObserver::OnEpoch(const EpochReport& e) {
  if (next_ != nullptr) next_->OnEpoch(e);
  Report(EpochObservations(e, classification_, absl::Now()));
}

absl::Status KatibPushObserver::ReportFinal(
    const std::vector<std::pair<std::string, double>>& metrics) {
  const absl::Time now = absl::Now();
  std::vector<MetricObservation> observations;
  for (const auto& [name, value] : metrics) observations.push_back({name, value, now});
  if (!observations.empty()) Report(observations);
  return status_;
}

void KatibPushObserver::Report(const std::vector<MetricObservation>& observations) {
  if (!status_.ok()) return;
  status_ = client_->Report(observations);
}

}  // namespace cajal
