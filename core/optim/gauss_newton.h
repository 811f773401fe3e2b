// Exact Gauss-Newton matrix-vector products G·v = Jᵀ H_L J v for Hessian-free optimization
// (Martens 2010; Pearlmutter 1994's R-operator), over the flat trainable-parameter layout of a
// network's ParamStore.
//
//   ASSIGN_OR_RETURN(auto gn, GaussNewtonProduct::Create(net, /*batch=*/128, loss, loss_at));
//   copy the curvature batch into gn->plan()->input(); gn->plan()->Forward(step);
//   gn->Multiply(v, gv);  // any number of times: the plan's activations are the tape
//
// J is the Jacobian of the activation the loss reads (activation(loss_at): the softmax/sigmoid
// input when the loss is fused with the last layer, else the network output) with respect to
// the trainable parameters, over the whole batch; H_L is the Hessian of the batch's mean loss
// with respect to that activation, which is positive semi-definite for every loss here:
//   cross_entropy          (diag(p) − ppᵀ)/N per example, p = softmax of the logits
//   binary_cross_entropy   p(1 − p)/(N·D) elementwise, p = sigmoid of the logits
//   mse                    2/(N·D)·I (the loss's own mean over N·D elements)
// so G is PSD too. Cost: one R-forward pass (sgemm per dense layer) and one ordinary backward
// pass of the training plan; nothing is allocated per product.
//
// Supported layers are those of SupportsHessianFree(); Create refuses any other.
// Runs on host memory (the CPU backend). Overwrites the store's gradient buffer.
// Not thread-safe: belongs to the network's training thread.
#ifndef CAJAL_CORE_OPTIM_GAUSS_NEWTON_H_
#define CAJAL_CORE_OPTIM_GAUSS_NEWTON_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/layers/layers.h"
#include "core/loss/loss.h"
#include "core/tensor/tensor.h"
#include "core/train/network.h"

namespace cajal {

// The one place that says which layers have an R-forward pass here: dense, flatten and the
// elementwise activations linear, sigmoid, tanh, relu, leaky_relu and softmax. Everything else
// (conv2d, pooling, lrn, batch_norm, dropout, threshold, prelu, recurrent) does not.
bool SupportsHessianFree(const LayerSpec& layer);

// OK when every layer supports HF; else kInvalidArgument naming the first that does not:
// "model.layers.3 (conv2d): hessian_free does not support this layer".
absl::Status ValidateHessianFreeLayers(const std::vector<LayerSpec>& layers);

class GaussNewtonProduct {
 public:
  // Binds to the (batch, kTrain) plan of `net`, which must outlive the product. `loss_at` is
  // the activation index the loss reads (layers − 1 when fused with the last layer, else
  // layers). Errors: ValidateHessianFreeLayers' and the backend's.
  static absl::StatusOr<std::unique_ptr<GaussNewtonProduct>> Create(Network* net, int64_t batch,
                                                                    const LossConfig& loss,
                                                                    int loss_at);

  // The plan whose last Forward defines the curvature batch.
  Plan* plan() { return plan_; }
  int64_t batch() const { return batch_; }
  // Number of entries of v and gv: the store's trainable_total().
  int64_t size() const { return size_; }

  // gv = G·v for the batch last run through plan()->Forward. v and gv must not alias.
  void Multiply(const float* v, float* gv);
  // Jv only: R{activation(loss_at)} (batch, D) for direction v; valid until the next call.
  const float* ForwardR(const float* v);
  // The first backend error of any Multiply (they run inside CG, which cannot stop early);
  // gv is meaningless once it is not OK.
  const absl::Status& status() const { return status_; }

 private:
  GaussNewtonProduct() = default;
  // Overwrites r (batch, D) with H_L·r.
  void ApplyLossHessian(float* r);

  struct DenseParams {
    int weight = -1;  // store indices; bias -1 without one
    int bias = -1;
  };
  Network* net_ = nullptr;
  Plan* plan_ = nullptr;
  int64_t batch_ = 0;
  int64_t size_ = 0;
  LossConfig loss_;
  int loss_at_ = 0;
  std::vector<DenseParams> dense_;  // per layer
  std::vector<AlignedBuffer> r_;    // R{activation(i)}, i = 1..loss_at
  absl::Status status_;
};

}  // namespace cajal

#endif  // CAJAL_CORE_OPTIM_GAUSS_NEWTON_H_
