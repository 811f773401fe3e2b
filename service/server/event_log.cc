#include "service/server/event_log.h"

#include <algorithm>

namespace cajal {

bool EventLog::Read(int64_t from, size_t max, std::vector<v1::JobEvent>* out) const {
  absl::MutexLock lock(&mu_);
  const int64_t n = static_cast<int64_t>(events_.size());
  int64_t i = std::max<int64_t>(from, 0);
  for (; i < n && max > 0; ++i, --max) out->push_back(events_[i]);
  return closed_ && i >= n;
}

bool EventLog::Subscribe(std::weak_ptr<EventListener> listener, int max) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(std::remove_if(listeners_.begin(), listeners_.end(),
                                  [](const auto& w) { return w.expired(); }),
                   listeners_.end());
  if (static_cast<int64_t>(listeners_.size()) >= max) return false;
  listeners_.push_back(std::move(listener));
  return true;
}

int64_t EventLog::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(events_.size());
}

void EventLog::Append(v1::JobEvent event) {
  {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }
  Notify();
}

void EventLog::Close() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  Notify();
}

void EventLog::Notify() {
  std::vector<std::shared_ptr<EventListener>> live;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& w : listeners_) {
      if (auto l = w.lock()) live.push_back(std::move(l));
    }
  }
  for (const auto& l : live) l->OnEvents();
}

}  // namespace cajal
