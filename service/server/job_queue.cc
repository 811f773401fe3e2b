#include "service/server/job_queue.h"

#include <algorithm>

namespace cajal {

int GpuSlots::free() const {
  return static_cast<int>(std::count(busy_.begin(), busy_.end(), false));
}

int GpuSlots::Acquire() {
  for (size_t i = 0; i < busy_.size(); ++i) {
    if (!busy_[i]) {
      busy_[i] = true;
      return static_cast<int>(i);
    }
  }
  return -1;
}

void GpuSlots::Release(int gpu) {
  if (gpu >= 0 && gpu < count()) busy_[static_cast<size_t>(gpu)] = false;
}

void JobQueue::Push(std::string id, Demand demand) {
  waiting_.push_back({std::move(id), demand, 0});
}

bool JobQueue::Remove(const std::string& id) {
  auto it =
      std::find_if(waiting_.begin(), waiting_.end(), [&](const Waiting& w) { return w.id == id; });
  if (it == waiting_.end()) return false;
  waiting_.erase(it);
  return true;
}

size_t JobQueue::Find() const {
  // What later jobs may still take: what is free, less what starving jobs ahead of them hold
  // (which can go below zero: then nothing that needs it fits).
  int64_t memory = capacity_ - reserved_;
  int gpus = gpus_.free();
  for (size_t i = 0; i < waiting_.size(); ++i) {
    const Demand& d = waiting_[i].demand;
    if (d.host_bytes <= std::max<int64_t>(memory, 0) && (!d.gpu || gpus > 0)) return i;
    if (waiting_[i].passovers >= kMaxPassovers) {
      memory -= d.host_bytes;
      if (d.gpu) --gpus;
    }
  }
  return waiting_.size();
}

std::optional<Lease> JobQueue::Pick() {
  const size_t found = Find();
  if (found == waiting_.size()) return std::nullopt;
  for (size_t i = 0; i < found; ++i) ++waiting_[i].passovers;
  const Waiting& w = waiting_[found];
  Lease lease{w.id, w.demand.host_bytes, w.demand.gpu ? gpus_.Acquire() : -1};
  reserved_ += lease.host_bytes;
  waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(found));
  return lease;
}

void JobQueue::Release(const Lease& lease) {
  reserved_ -= lease.host_bytes;
  gpus_.Release(lease.gpu);
}

std::vector<std::string> JobQueue::ids() const {
  std::vector<std::string> ids;
  for (const Waiting& w : waiting_) ids.push_back(w.id);
  return ids;
}

}  // namespace cajal
