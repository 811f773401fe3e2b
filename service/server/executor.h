// A single thread running posted tasks in order: where the server does work that may block on
// disk or take long (store writes and reads; finding a download's files, which may export a
// model to ONNX) so that gRPC reactions never do. Thread-safe.
#ifndef CAJAL_SERVICE_SERVER_EXECUTOR_H_
#define CAJAL_SERVICE_SERVER_EXECUTOR_H_

#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace cajal {

class Executor {
 public:
  Executor();
  // Runs every task already posted, then joins the thread.
  ~Executor();
  void Post(std::function<void()> task);

 private:
  void Loop();
  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_EXECUTOR_H_
