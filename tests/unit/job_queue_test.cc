// The queue's scheduling alone (service/server/job_queue.h), with no job and no GPU: memory
// admission by the sum of the running jobs' estimates, first-in-first-out with backfill, the
// passover limit that keeps a large job from starving, and one job per GPU.
#include "service/server/job_queue.h"

#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cajal {
namespace {

constexpr int64_t kGB = 1'000'000'000;

std::string Picked(JobQueue* q) {
  std::optional<Lease> lease = q->Pick();
  return lease ? lease->id : "";
}

TEST(GpuSlotsTest, OneJobPerGpuLowestFirst) {
  GpuSlots gpus(2);
  EXPECT_EQ(gpus.free(), 2);
  EXPECT_EQ(gpus.Acquire(), 0);
  EXPECT_EQ(gpus.Acquire(), 1);
  EXPECT_EQ(gpus.Acquire(), -1) << "both busy";
  EXPECT_TRUE(gpus.busy(1));
  gpus.Release(0);
  EXPECT_FALSE(gpus.busy(0));
  EXPECT_EQ(gpus.Acquire(), 0);
  gpus.Release(-1);  // a CPU job's lease: nothing to give back
  gpus.Release(7);
  EXPECT_EQ(gpus.free(), 0);
  EXPECT_EQ(GpuSlots(0).Acquire(), -1);
}

TEST(JobQueueTest, RunningJobsTogetherStayWithinTheCapacity) {
  JobQueue q(/*memory_capacity=*/8 * kGB, /*gpus=*/0);
  q.Push("a", {5 * kGB, false});
  q.Push("b", {4 * kGB, false});
  std::optional<Lease> a = q.Pick();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->id, "a");
  EXPECT_EQ(a->gpu, -1);
  EXPECT_EQ(q.reserved_bytes(), 5 * kGB);
  EXPECT_FALSE(q.CanPick()) << "b fits alone, but not beside a";
  EXPECT_FALSE(q.Pick().has_value());
  EXPECT_EQ(q.ids(), std::vector<std::string>{"b"});
  q.Release(*a);
  EXPECT_EQ(q.reserved_bytes(), 0);
  EXPECT_TRUE(q.CanPick());
  EXPECT_EQ(Picked(&q), "b");
  EXPECT_TRUE(q.empty());
}

TEST(JobQueueTest, FirstInFirstOutWhenEverythingFits) {
  JobQueue q(100 * kGB, 0);
  for (const char* id : {"1", "2", "3"}) q.Push(id, {kGB, false});
  EXPECT_EQ(Picked(&q), "1");
  EXPECT_EQ(Picked(&q), "2");
  EXPECT_EQ(Picked(&q), "3");
  EXPECT_EQ(q.reserved_bytes(), 3 * kGB);
}

TEST(JobQueueTest, SmallJobsPassALargeOneOnlyUpToTheLimit) {
  JobQueue q(10 * kGB, 0);
  q.Push("running", {6 * kGB, false});
  std::optional<Lease> running = q.Pick();
  ASSERT_TRUE(running.has_value());
  q.Push("large", {8 * kGB, false});
  for (int i = 0; i < JobQueue::kMaxPassovers + 2; ++i) {
    q.Push("small" + std::to_string(i), {kGB, false});
  }
  // The small ones fill in beside the running job (backfill), passing the large one...
  std::vector<std::optional<Lease>> smalls;
  for (int i = 0; i < JobQueue::kMaxPassovers; ++i) {
    smalls.push_back(q.Pick());
    ASSERT_TRUE(smalls.back().has_value()) << i;
    EXPECT_EQ(smalls.back()->id, "small" + std::to_string(i));
    q.Release(*smalls.back());  // each small one ends before the next
  }
  // ...but only kMaxPassovers times: now the large one holds the memory it waits for, and
  // nothing behind it starts, though a small one would fit.
  EXPECT_EQ(q.capacity() - q.reserved_bytes(), 4 * kGB);
  EXPECT_FALSE(q.CanPick());
  q.Release(*running);
  EXPECT_EQ(Picked(&q), "large");
  EXPECT_EQ(Picked(&q), "small" + std::to_string(JobQueue::kMaxPassovers)) << "2 GB left";
}

TEST(JobQueueTest, ARemovedJobNoLongerWaitsOrBlocks) {
  JobQueue q(4 * kGB, 0);
  q.Push("running", {3 * kGB, false});
  std::optional<Lease> running = q.Pick();
  q.Push("large", {4 * kGB, false});
  q.Push("small", {kGB, false});
  EXPECT_TRUE(q.Remove("large"));
  EXPECT_FALSE(q.Remove("large"));
  EXPECT_EQ(Picked(&q), "small");
  EXPECT_EQ(q.reserved_bytes(), 4 * kGB);
}

TEST(JobQueueTest, GpuJobsWaitForAFreeGpuWithoutHoldingUpCpuJobs) {
  JobQueue q(100 * kGB, /*gpus=*/1);
  q.Push("gpu-a", {kGB, true});
  q.Push("gpu-b", {kGB, true});
  for (int i = 0; i < JobQueue::kMaxPassovers + 3; ++i) {
    q.Push("cpu" + std::to_string(i), {kGB, false});
  }
  std::optional<Lease> a = q.Pick();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->id, "gpu-a");
  EXPECT_EQ(a->gpu, 0);
  EXPECT_TRUE(q.gpus().busy(0));
  // gpu-b waits for the GPU; CPU jobs pass it, even past the passover limit, because none of
  // them takes what it waits for.
  for (int i = 0; i < JobQueue::kMaxPassovers + 3; ++i) {
    EXPECT_EQ(Picked(&q), "cpu" + std::to_string(i));
  }
  EXPECT_FALSE(q.CanPick());
  q.Release(*a);
  std::optional<Lease> b = q.Pick();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->id, "gpu-b");
  EXPECT_EQ(b->gpu, 0);
}

TEST(JobQueueTest, EachGpuJobGetsItsOwnGpu) {
  JobQueue q(100 * kGB, /*gpus=*/2);
  for (const char* id : {"a", "b", "c"}) q.Push(id, {kGB, true});
  std::optional<Lease> a = q.Pick(), b = q.Pick();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->gpu, 0);
  EXPECT_EQ(b->gpu, 1);
  EXPECT_FALSE(q.Pick().has_value()) << "c waits: one job per GPU";
  q.Release(*b);
  std::optional<Lease> c = q.Pick();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->gpu, 1);
}

TEST(JobQueueTest, AStarvingJobHoldsItsGpuFromLaterGpuJobs) {
  JobQueue q(10 * kGB, /*gpus=*/1);
  q.Push("cpu-big", {9 * kGB, false});
  std::optional<Lease> big = q.Pick();
  q.Push("gpu-needs-memory", {5 * kGB, true});  // waits for memory, not for the free GPU
  for (int i = 0; i < JobQueue::kMaxPassovers; ++i) {
    q.Push("small-cpu" + std::to_string(i), {kGB / 2, false});
  }
  q.Push("gpu-small", {kGB / 2, true});
  for (int i = 0; i < JobQueue::kMaxPassovers; ++i) {
    std::optional<Lease> s = q.Pick();
    ASSERT_TRUE(s.has_value());
    q.Release(*s);
  }
  // Passed over enough: it now holds the GPU (and memory) it needs, so gpu-small may not take
  // the GPU although it would fit.
  EXPECT_FALSE(q.CanPick());
  q.Release(*big);
  EXPECT_EQ(Picked(&q), "gpu-needs-memory");
}

TEST(JobQueueTest, AJobThatHoldsNothingAlwaysStarts) {
  JobQueue q(kGB, 0);
  q.Push("running", {kGB, false});
  std::optional<Lease> running = q.Pick();
  q.Push("large", {kGB, false});
  for (int i = 0; i < JobQueue::kMaxPassovers; ++i) {
    q.Push("tiny" + std::to_string(i), {0, false});
    EXPECT_EQ(Picked(&q), "tiny" + std::to_string(i));
  }
  // A job refused at load (it will only fail) holds nothing and starts even behind a job that
  // now holds everything.
  q.Push("refused", {0, false});
  EXPECT_EQ(Picked(&q), "refused");
  EXPECT_EQ(q.ids(), std::vector<std::string>{"large"});
}

}  // namespace
}  // namespace cajal
