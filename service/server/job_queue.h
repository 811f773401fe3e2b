// The jobs waiting to run, and the resources they wait for: memory (the running jobs' estimates
// together stay within the capacity for jobs) and GPUs (one job per GPU).
//
//   JobQueue queue(/*memory_capacity=*/8'000'000'000, /*gpus=*/2);
//   queue.Push("a", {/*host_bytes=*/6'000'000'000, /*gpu=*/false});
//   queue.Push("b", {3'000'000'000, false});
//   std::optional<Lease> lease = queue.Pick();   // "a": 6 GB reserved
//   queue.Pick();                                // nullopt: "b" waits for memory
//   queue.Release(*lease);                       // "b" can start now
//
// Order: first in, first out, with backfill. Pick starts the first job that fits what is free;
// a job that does not fit may be passed by later jobs that do, but only kMaxPassovers times:
// after that it holds what it waits for (memory, or a GPU) and no later job may take any of it,
// so running jobs drain until it fits. A stream of small jobs cannot starve a large one, and a
// job waiting for a GPU does not hold up jobs that need only the CPU and memory it leaves.
//
// Not thread-safe: the manager calls it under its lock.
#ifndef CAJAL_SERVICE_SERVER_JOB_QUEUE_H_
#define CAJAL_SERVICE_SERVER_JOB_QUEUE_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace cajal {

// What a job holds while it runs.
struct Demand {
  int64_t host_bytes = 0;  // its memory estimate, less what lives on a GPU
  bool gpu = false;        // it runs on a GPU of its own
};

// A started job's hold on its resources; given back with JobQueue::Release.
struct Lease {
  std::string id;
  int64_t host_bytes = 0;
  int gpu = -1;  // the GPU it runs on; -1: none
};

// One job per GPU: which GPUs are free.
class GpuSlots {
 public:
  explicit GpuSlots(int count) : busy_(static_cast<size_t>(count > 0 ? count : 0), false) {}
  int count() const { return static_cast<int>(busy_.size()); }
  int free() const;
  bool busy(int gpu) const { return busy_.at(static_cast<size_t>(gpu)); }
  // The lowest free GPU, now busy; -1 when every GPU is busy.
  int Acquire();
  void Release(int gpu);

 private:
  std::vector<bool> busy_;
};

class JobQueue {
 public:
  // How often a waiting job may be passed by later ones before it holds what it waits for.
  static constexpr int kMaxPassovers = 4;

  JobQueue(int64_t memory_capacity, int gpus) : capacity_(memory_capacity), gpus_(gpus) {}

  // At the back of the queue.
  void Push(std::string id, Demand demand);
  // Removes a waiting job (cancelled); false when it is not waiting.
  bool Remove(const std::string& id);
  // Whether Pick would start a job now.
  bool CanPick() const { return Find() < waiting_.size(); }
  // The job that starts now, with its resources taken; nullopt when none fits.
  std::optional<Lease> Pick();
  // Gives back what a started job held.
  void Release(const Lease& lease);

  bool empty() const { return waiting_.empty(); }
  size_t size() const { return waiting_.size(); }
  // The waiting jobs, in queue order.
  std::vector<std::string> ids() const;
  int64_t capacity() const { return capacity_; }
  int64_t reserved_bytes() const { return reserved_; }
  const GpuSlots& gpus() const { return gpus_; }

 private:
  struct Waiting {
    std::string id;
    Demand demand;
    int passovers = 0;
  };
  // The position of the first waiting job that fits, honouring what passed-over jobs hold;
  // size() when none does.
  size_t Find() const;

  int64_t capacity_;
  int64_t reserved_ = 0;
  GpuSlots gpus_;
  std::deque<Waiting> waiting_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_JOB_QUEUE_H_
