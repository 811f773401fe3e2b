// The ordered events of one job (state changes and metric points, numbered 0, 1, 2, ...) as
// watchers read them, and the listeners a log wakes when it grows or closes.
//
//   auto log = std::make_shared<EventLog>();
//   log->Append(event);                      // the manager, once the event is stored
//   std::vector<v1::JobEvent> out;
//   bool ended = log->Read(/*from=*/0, /*max=*/16, &out);
//
// Thread-safe.
#ifndef CAJAL_SERVICE_SERVER_EVENT_LOG_H_
#define CAJAL_SERVICE_SERVER_EVENT_LOG_H_

#include <climits>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cajal/v1/training_service.pb.h"

namespace cajal {

// Told when a job's event log grows or closes. Called without any log or manager lock held,
// possibly from a job thread; implementations must not block.
class EventListener {
 public:
  virtual ~EventListener() = default;
  virtual void OnEvents() = 0;
};

class EventLog {
 public:
  // Appends events[from..] (at most `max`) to `out`; returns true when the log is closed (the
  // job is terminal) and `from` + the events returned reach its end.
  bool Read(int64_t from, size_t max, std::vector<v1::JobEvent>* out) const;
  // Listeners are held weakly; a dead one is dropped. Returns false (and subscribes nothing)
  // when `max` live listeners are already subscribed.
  bool Subscribe(std::weak_ptr<EventListener> listener, int max = INT32_MAX);
  int64_t size() const;

  // For the manager.
  void Append(v1::JobEvent event);
  void Close();

 private:
  void Notify();
  mutable absl::Mutex mu_;
  std::vector<v1::JobEvent> events_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::weak_ptr<EventListener>> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_EVENT_LOG_H_
