// Data-parallel gradient reduction: the one place between the backward pass and the optimizer
// where the gradients of every rank are summed.
//
//   ASSIGN_OR_RETURN(auto reducer, GradientReducer::Create(net, collective, kBucketFloats));
//   RETURN_IF_ERROR(plan->Backward(loss_at, reducer.get()));  // buckets start as layers finish
//   RETURN_IF_ERROR(reducer->Finish());                       // the rest, then wait for all
//   RETURN_IF_ERROR(optimizer->Step());
//
// The trainable gradients are one flat buffer laid out in layer order, and the backward pass
// finishes layers from the last to the first, so the buffer's tail is final first. It is cut
// into buckets of at least `bucket_floats` values at layer boundaries; a bucket's sum starts
// as soon as the backward pass has finished the lowest layer in it, while the layers below
// still run (PyTorch DDP's buckets, in reverse order of the parameters). The loss scales each
// example's gradient by 1/(global batch), so the sums are the global mean gradient.
//
// Not thread-safe: belongs to the training thread.
#ifndef CAJAL_CORE_TRAIN_DATA_PARALLEL_H_
#define CAJAL_CORE_TRAIN_DATA_PARALLEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/collective/collective.h"
#include "core/train/network.h"

namespace cajal {

// 4 MiB of floats: large enough that per-message latency is amortized, small enough that the
// first bucket starts early in the backward pass.
inline constexpr int64_t kDefaultBucketFloats = int64_t{1} << 20;

class GradientReducer : public BackwardListener {
 public:
  static std::unique_ptr<GradientReducer> Create(Network* net, Collective* collective,
                                                 int64_t bucket_floats = kDefaultBucketFloats);

  // Starts the bucket whose lowest layer is `layer`, if any.
  absl::Status OnLayerBackward(int layer) override;
  // Starts the buckets not yet started and waits for every sum of this step.
  absl::Status Finish();

  // [begin, end) of the trainable gradients, per bucket, in the order they start.
  struct Bucket {
    int64_t begin = 0;
    int64_t end = 0;
    int first_layer = 0;  // the lowest layer whose parameters it holds
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }
  // Seconds Finish spent waiting for sums, in all.
  double wait_seconds() const { return wait_seconds_; }

 private:
  GradientReducer() = default;
  absl::Status Start(size_t bucket);

  Network* net_ = nullptr;
  Collective* collective_ = nullptr;
  std::vector<Bucket> buckets_;
  std::vector<int> bucket_of_layer_;  // -1: no bucket starts after this layer
  std::vector<Collective::Request> pending_;
  size_t started_ = 0;
  double wait_seconds_ = 0;
};

}  // namespace cajal

#endif  // CAJAL_CORE_TRAIN_DATA_PARALLEL_H_
