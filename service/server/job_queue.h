// The jobs waiting for a worker, in the order they will start (first in, first out). Jobs that
// were RUNNING when the previous server stopped are queued again at load, in creation order.
//
// Not thread-safe: the manager calls it under its lock.
#ifndef CAJAL_SERVICE_SERVER_JOB_QUEUE_H_
#define CAJAL_SERVICE_SERVER_JOB_QUEUE_H_

#include <deque>
#include <string>

namespace cajal {

class JobQueue {
 public:
  void Push(std::string id) { ids_.push_back(std::move(id)); }
  bool empty() const { return ids_.empty(); }
  size_t size() const { return ids_.size(); }
  // The job that starts next; the queue must not be empty.
  std::string Pop();
  const std::deque<std::string>& ids() const { return ids_; }

 private:
  std::deque<std::string> ids_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_JOB_QUEUE_H_
