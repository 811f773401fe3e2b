#include "service/server/job_queue.h"

namespace cajal {

std::string JobQueue::Pop() {
  std::string id = std::move(ids_.front());
  ids_.pop_front();
  return id;
}

}  // namespace cajal
