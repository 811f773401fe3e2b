#include "core/train/data_parallel.h"

#include <algorithm>
#include <chrono>

#include "core/util/status_macros.h"

namespace cajal {

std::unique_ptr<GradientReducer> GradientReducer::Create(Network* net, Collective* collective,
                                                         int64_t bucket_floats) {
  std::unique_ptr<GradientReducer> r(new GradientReducer());
  r->net_ = net;
  r->collective_ = collective;
  const ParamStore& store = net->params();
  const int layers = static_cast<int>(net->layers().size());
  r->bucket_of_layer_.assign(static_cast<size_t>(layers), -1);
  // Walk the layers from the top; a bucket closes at the start of the first layer that brings
  // it to bucket_floats. Layers without trainable parameters join the bucket below.
  int64_t end = store.trainable_total();
  for (int i = layers - 1; i >= 0; --i) {
    int64_t begin = end;
    for (int id : net->layer_params(i)) {
      if (IsTrainable(store.decl(id).role)) begin = std::min(begin, store.offset(id));
    }
    const bool last = i == 0;
    if (begin < end && (end - begin >= bucket_floats || last)) {
      r->bucket_of_layer_[static_cast<size_t>(i)] = static_cast<int>(r->buckets_.size());
      r->buckets_.push_back({begin, end, i});
      end = begin;
    } else if (last && end > 0) {
      r->bucket_of_layer_[0] = static_cast<int>(r->buckets_.size());
      r->buckets_.push_back({0, end, 0});
    }
  }
  r->pending_.reserve(r->buckets_.size());
  return r;
}

absl::Status GradientReducer::Start(size_t bucket) {
  const Bucket& b = buckets_[bucket];
  ASSIGN_OR_RETURN(Collective::Request req,
                   collective_->StartAllReduce(net_->params().grads() + b.begin, b.end - b.begin));
  pending_.push_back(req);
  started_ = bucket + 1;
  return absl::OkStatus();
}

absl::Status GradientReducer::OnLayerBackward(int layer) {
  const int b = bucket_of_layer_[static_cast<size_t>(layer)];
  if (b >= 0) {
    // Buckets start in order on every rank, whichever layers have finished.
    for (size_t k = started_; k <= static_cast<size_t>(b); ++k) RETURN_IF_ERROR(Start(k));
  }
  collective_->Poll();
  return absl::OkStatus();
}

absl::Status GradientReducer::Finish() {
  for (size_t k = started_; k < buckets_.size(); ++k) RETURN_IF_ERROR(Start(k));
  absl::Status status;
  const auto start = std::chrono::steady_clock::now();
  for (Collective::Request r : pending_) {
    absl::Status s = collective_->Wait(r);
    if (status.ok()) status = s;
  }
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  pending_.clear();
  started_ = 0;
  return status;
}

}  // namespace cajal
