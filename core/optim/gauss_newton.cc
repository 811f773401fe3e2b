#include "core/optim/gauss_newton.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <variant>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "oneapi/dnnl/dnnl.h"

namespace cajal {
namespace {

// Elementwise work below this many entries stays on one thread.
constexpr int64_t kParallelThreshold = 1 << 15;

}  // namespace

bool SupportsHessianFree(const LayerSpec& layer) {
  if (std::holds_alternative<DenseSpec>(layer) || std::holds_alternative<FlattenSpec>(layer)) {
    return true;
  }
  if (const auto* a = std::get_if<ActivationSpec>(&layer)) return a->kind != Activation::kPrelu;
  return false;
}

absl::Status ValidateHessianFreeLayers(const std::vector<LayerSpec>& layers) {
  for (size_t i = 0; i < layers.size(); ++i) {
    if (SupportsHessianFree(layers[i])) continue;
    const auto* a = std::get_if<ActivationSpec>(&layers[i]);
    return absl::InvalidArgumentError(absl::StrCat(
        "model.layers.", i, " (", LayerKindName(layers[i]),
        "): hessian_free does not support this layer",
        a != nullptr ? " (prelu); use relu or leaky_relu" : "",
        "; it supports dense, flatten and the activations linear, sigmoid, tanh, relu, "
        "leaky_relu, softmax"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<GaussNewtonProduct>> GaussNewtonProduct::Create(
    Network* net, int64_t batch, const LossConfig& loss, int loss_at) {
  RETURN_IF_ERROR(ValidateHessianFreeLayers(net->layers()));
  const int layers = static_cast<int>(net->layers().size());
  if (loss_at < 1 || loss_at > layers) {
    return absl::InvalidArgumentError(absl::StrCat("loss_at ", loss_at, " is out of range"));
  }
  std::unique_ptr<GaussNewtonProduct> gn(new GaussNewtonProduct());
  ASSIGN_OR_RETURN(gn->plan_, net->GetPlan(batch, Mode::kTrain));
  gn->net_ = net;
  gn->batch_ = batch;
  gn->size_ = net->params().trainable_total();
  gn->loss_ = loss;
  gn->loss_at_ = loss_at;
  const ParamStore& store = net->params();
  gn->dense_.resize(static_cast<size_t>(layers));
  for (int i = 0; i < layers; ++i) {
    if (!std::holds_alternative<DenseSpec>(net->layers()[i])) continue;
    const std::string prefix = absl::StrCat("layers.", i, ".dense.");
    gn->dense_[i].weight = store.Find(prefix + "weight");
    gn->dense_[i].bias = store.Find(prefix + "bias");
  }
  // r_[0] is R{input} = 0 and stays zero.
  for (int i = 0; i <= loss_at; ++i) {
    gn->r_.emplace_back(static_cast<size_t>(batch * NumElements(net->shapes()[i])));
  }
  return gn;
}

const float* GaussNewtonProduct::ForwardR(const float* v) {
  const int64_t n = batch_;
  const ParamStore& store = net_->params();
  for (int i = 0; i < loss_at_; ++i) {
    const LayerSpec& layer = net_->layers()[i];
    const int64_t in = NumElements(net_->shapes()[i]);
    const int64_t out = NumElements(net_->shapes()[i + 1]);
    const float* r_in = r_[i].data();
    float* r_out = r_[i + 1].data();
    const float* a_in = plan_->activation(i);
    if (std::holds_alternative<DenseSpec>(layer)) {
      // R{y} = R{x}·Wᵀ + x·Vᵀ + v_b; (n, in) x (out, in)ᵀ -> (n, out). R{input} = 0.
      const DenseParams& p = dense_[i];
      const float* w = store.value(p.weight);
      const float* vw = v + store.offset(p.weight);
      float beta = 0.0f;
      if (i > 0) {
        dnnl_sgemm('N', 'T', n, out, in, 1.0f, r_in, in, w, in, 0.0f, r_out, out);
        beta = 1.0f;
      }
      dnnl_sgemm('N', 'T', n, out, in, 1.0f, a_in, in, vw, in, beta, r_out, out);
      if (p.bias >= 0) {
        const float* vb = v + store.offset(p.bias);
#pragma omp parallel for schedule(static) if (n * out >= kParallelThreshold)
        for (int64_t b = 0; b < n; ++b) {
          float* row = r_out + b * out;
          for (int64_t j = 0; j < out; ++j) row[j] += vb[j];
        }
      }
    } else if (std::holds_alternative<FlattenSpec>(layer)) {
      std::memcpy(r_out, r_in, sizeof(float) * n * out);
    } else {
      // R{z} = φ'(a) ⊙ R{a}, from the saved input a and output z.
      const ActivationSpec& act = std::get<ActivationSpec>(layer);
      const float* z = plan_->activation(i + 1);
      const int64_t count = n * out;
      const bool parallel = count >= kParallelThreshold;
      switch (act.kind) {
        case Activation::kLinear:
          std::memcpy(r_out, r_in, sizeof(float) * count);
          break;
        case Activation::kSigmoid:
#pragma omp parallel for simd schedule(static) if (parallel)
          for (int64_t k = 0; k < count; ++k) r_out[k] = z[k] * (1.0f - z[k]) * r_in[k];
          break;
        case Activation::kTanh:
#pragma omp parallel for simd schedule(static) if (parallel)
          for (int64_t k = 0; k < count; ++k) r_out[k] = (1.0f - z[k] * z[k]) * r_in[k];
          break;
        case Activation::kRelu:
#pragma omp parallel for simd schedule(static) if (parallel)
          for (int64_t k = 0; k < count; ++k) r_out[k] = a_in[k] > 0.0f ? r_in[k] : 0.0f;
          break;
        case Activation::kLeakyRelu: {
          const float slope = act.slope;
#pragma omp parallel for simd schedule(static) if (parallel)
          for (int64_t k = 0; k < count; ++k) {
            r_out[k] = a_in[k] > 0.0f ? r_in[k] : slope * r_in[k];
          }
          break;
        }
        case Activation::kSoftmax: {
          // Over the last dimension: R{z} = z ⊙ (R{a} − zᵀR{a}).
          const int64_t d = net_->shapes()[i + 1].back();
          const int64_t rows = count / d;
#pragma omp parallel for schedule(static) if (parallel)
          for (int64_t row = 0; row < rows; ++row) {
            const float* zr = z + row * d;
            const float* ri = r_in + row * d;
            double dot = 0;
            for (int64_t j = 0; j < d; ++j) dot += static_cast<double>(zr[j]) * ri[j];
            for (int64_t j = 0; j < d; ++j) {
              r_out[row * d + j] = static_cast<float>(zr[j] * (ri[j] - dot));
            }
          }
          break;
        }
        case Activation::kPrelu:
          break;  // refused in Create
      }
    }
  }
  return r_[loss_at_].data();
}

void GaussNewtonProduct::ApplyLossHessian(float* r) {
  const int64_t n = batch_;
  const int64_t d = NumElements(net_->shapes()[loss_at_]);
  const float* s = plan_->activation(loss_at_);  // the loss's input: logits or outputs
  // The loss's own probabilities when fused with the last layer.
  const float* fused_p = loss_.fused ? plan_->activation(loss_at_ + 1) : nullptr;
  const double inv_n = 1.0 / static_cast<double>(n);
  const bool parallel = n * d >= kParallelThreshold;
  switch (loss_.kind) {
    case LossKind::kMse: {
      const float scale = static_cast<float>(2.0 * inv_n / static_cast<double>(d));
#pragma omp parallel for simd schedule(static) if (parallel)
      for (int64_t k = 0; k < n * d; ++k) r[k] *= scale;
      break;
    }
    case LossKind::kBinaryCrossEntropy: {
      const double scale = inv_n / static_cast<double>(d);
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t k = 0; k < n * d; ++k) {
        const double p = fused_p != nullptr ? fused_p[k] : 1.0 / (1.0 + std::exp(-s[k]));
        r[k] = static_cast<float>(p * (1.0 - p) * scale * r[k]);
      }
      break;
    }
    case LossKind::kCrossEntropy: {
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t b = 0; b < n; ++b) {
        float* u = r + b * d;
        const float* row = s + b * d;
        // p = softmax(row) unless the network already computed it; recomputed per use rather
        // than stored, so nothing is allocated per product.
        double mx = 0, z = 1;
        if (fused_p == nullptr) {
          mx = *std::max_element(row, row + d);
          z = 0;
          for (int64_t j = 0; j < d; ++j) z += std::exp(row[j] - mx);
        }
        auto p = [&](int64_t j) {
          return fused_p != nullptr ? static_cast<double>(fused_p[b * d + j])
                                    : std::exp(row[j] - mx) / z;
        };
        double pu = 0;
        for (int64_t j = 0; j < d; ++j) pu += p(j) * u[j];
        for (int64_t j = 0; j < d; ++j) u[j] = static_cast<float>(p(j) * (u[j] - pu) * inv_n);
      }
      break;
    }
  }
}

void GaussNewtonProduct::Multiply(const float* v, float* gv) {
  ForwardR(v);
  float* r = r_[loss_at_].data();
  ApplyLossHessian(r);
  const int64_t count = batch_ * NumElements(net_->shapes()[loss_at_]);
  std::memcpy(plan_->diff(loss_at_), r, sizeof(float) * count);
  if (absl::Status s = plan_->Backward(loss_at_); !s.ok() && status_.ok()) status_ = s;
  std::memcpy(gv, net_->params().grads(), sizeof(float) * size_);
}

}  // namespace cajal
