#include "core/optim/hessian_free.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <variant>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "oneapi/dnnl/dnnl.h"

namespace cajal {
namespace {

constexpr int64_t kParallelThreshold = 1 << 15;
constexpr double kWarmStartDecay = 0.95;  // Martens 2010 §4.5; Martens & Sutskever 2012 §10
constexpr double kPreconditionerExponent = 0.75;  // Martens 2010 §4.7
constexpr double kArmijo = 1e-2;
constexpr double kLineSearchShrink = 0.8;
constexpr int kLineSearchTries = 60;

double Dot(const float* a, const float* b, int64_t n) {
  double s = 0;
#pragma omp parallel for simd reduction(+ : s) schedule(static) if (n >= kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

}  // namespace

CgResult PreconditionedCg(const MatVec& a, const float* b, const float* x0, const float* m,
                          int64_t n, const CgOptions& options) {
  CgResult res;
  const bool parallel = n >= kParallelThreshold;
  std::vector<float>& x = res.x;
  x.assign(static_cast<size_t>(n), 0.0f);
  if (x0 != nullptr) std::copy(x0, x0 + n, x.begin());
  std::vector<float> r(n), y(n), p(n), ap(n);
  // r = A·x − b: the gradient of φ. With x0 = 0, skip the product.
  if (x0 != nullptr) {
    a(x.data(), r.data());
  } else {
    std::fill(r.begin(), r.end(), 0.0f);
  }
#pragma omp parallel for simd schedule(static) if (parallel)
  for (int64_t i = 0; i < n; ++i) {
    r[i] -= b[i];
    y[i] = m != nullptr ? r[i] / m[i] : r[i];
    p[i] = -y[i];
  }
  // φ(x) = ½xᵀ(A·x − b) − ½bᵀx = ½xᵀ(r − b).
  auto phi = [&] {
    double s = 0;
#pragma omp parallel for simd reduction(+ : s) schedule(static) if (parallel)
    for (int64_t i = 0; i < n; ++i) s += 0.5 * static_cast<double>(x[i]) * (r[i] - b[i]);
    return s;
  };
  res.phi.push_back(phi());
  double ry = Dot(r.data(), y.data(), n);
  // Not in Martens' rule: once the preconditioned residual is at float round-off relative to
  // b, further iterations only chase noise (his rule would need k ≥ 10 more of them).
  double by = 0;
  for (int64_t i = 0; i < n; ++i)
    by += static_cast<double>(b[i]) * (m != nullptr ? b[i] / m[i] : b[i]);
  const double round_off = options.residual_tolerance * by;
  res.converged_by_residual = ry <= round_off;
  double next_save = 1;  // ⌈gamma^j⌉, j = 0, 1, ...
  for (int i = 1; i <= options.max_iterations && !(ry <= round_off); ++i) {
    a(p.data(), ap.data());
    const double pap = Dot(p.data(), ap.data(), n);
    if (!(pap > 0) || !(ry > 0)) break;  // converged exactly, or A is not positive definite
    const float alpha = static_cast<float>(ry / pap);
#pragma omp parallel for simd schedule(static) if (parallel)
    for (int64_t k = 0; k < n; ++k) {
      x[k] += alpha * p[k];
      r[k] += alpha * ap[k];
      y[k] = m != nullptr ? r[k] / m[k] : r[k];
    }
    const double ry_next = Dot(r.data(), y.data(), n);
    if (ry_next <= round_off) res.converged_by_residual = true;
    const float beta = static_cast<float>(ry_next / ry);
    ry = ry_next;
#pragma omp parallel for simd schedule(static) if (parallel)
    for (int64_t k = 0; k < n; ++k) p[k] = -y[k] + beta * p[k];
    res.iterations = i;
    res.phi.push_back(phi());
    if (i >= static_cast<int>(std::ceil(next_save))) {
      res.saved.emplace_back(i, x);
      while (std::ceil(next_save) <= i) next_save *= options.gamma;
    }
    // Martens §4.4: stop once the last k iterations improved φ by less than k·ε relative.
    const int k = std::max(10, static_cast<int>(std::ceil(0.1 * i)));
    const double phi_i = res.phi[i];
    if (i > k && phi_i < 0 && (phi_i - res.phi[i - k]) / phi_i < k * options.epsilon) {
      res.converged_by_progress = true;
      break;
    }
  }
  if (res.saved.empty() || res.saved.back().first != res.iterations) {
    res.saved.emplace_back(res.iterations, x);
  }
  return res;
}

double AdaptDamping(double lambda, double rho) {
  if (!(rho >= 0.25)) return lambda * 1.5;  // also NaN: distrust the model
  if (rho > 0.75) return lambda * (2.0 / 3.0);
  return lambda;
}

absl::StatusOr<std::unique_ptr<HessianFree>> HessianFree::Create(Network* net,
                                                                 const LossConfig& loss,
                                                                 int loss_at,
                                                                 const HessianFreeConfig& config) {
  RETURN_IF_ERROR(ValidateHessianFreeLayers(net->layers()));
  if (!(config.damping > 0) || !std::isfinite(config.damping)) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.hessian_free.damping: must be > 0, got ", config.damping));
  }
  if (config.cg_max_iterations < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.hessian_free.cg_max_iterations: must be > 0, got ", config.cg_max_iterations));
  }
  if (config.curvature_batch_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.hessian_free.curvature_batch_size: must be >= 0, got ",
                     config.curvature_batch_size));
  }
  std::unique_ptr<HessianFree> hf(new HessianFree());
  hf->net_ = net;
  hf->loss_ = loss;
  hf->loss_at_ = loss_at;
  hf->config_ = config;
  hf->lambda_ = config.damping;
  hf->size_ = net->params().trainable_total();
  const size_t n = static_cast<size_t>(hf->size_);
  hf->theta0_.resize(n);
  hf->grad_.resize(n);
  hf->m_.resize(n);
  hf->scratch_.resize(n);
  return hf;
}

int64_t HessianFree::curvature_batch(int64_t n) const {
  const int64_t c = config_.curvature_batch_size > 0 ? config_.curvature_batch_size : n / 4;
  return std::clamp<int64_t>(c, 1, n);
}

double HessianFree::LossAt(Plan* eval, const LossTargets& targets, const float* p, float scale) {
  float* theta = net_->params().values();
  const int64_t n = size_;
#pragma omp parallel for simd schedule(static) if (n >= kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) theta[i] = theta0_[i] + scale * p[i];
  if (absl::Status s = eval->Forward(0); !s.ok() && status_.ok()) status_ = s;
  const int64_t d = NumElements(net_->output_shape());
  const LossOutput out = ComputeLoss(loss_, eval->output(), eval->batch(), d, targets, nullptr);
  std::copy(theta0_.begin(), theta0_.end(), theta);
  return out.sum / static_cast<double>(eval->batch());
}

void HessianFree::Preconditioner(Plan* plan) {
  // Per-example gradients of a dense layer are δ_i ⊗ x_i, so Σ_i (δ_i ⊗ x_i)² = (δ²)ᵀ(x²): one
  // extra GEMM per layer gives the exact empirical-Fisher diagonal. δ here is the gradient of
  // the batch mean (1/N of each example's), hence the factor N² / N = N for Σ_i ∇f_i² / N.
  const int64_t n = plan->batch();
  const ParamStore& store = net_->params();
  std::fill(m_.begin(), m_.end(), 0.0f);
  const auto& layers = net_->layers();
  for (size_t l = 0; l < layers.size(); ++l) {
    if (!std::holds_alternative<DenseSpec>(layers[l])) continue;
    const int64_t in = NumElements(net_->shapes()[l]);
    const int64_t out = NumElements(net_->shapes()[l + 1]);
    const float* x = plan->activation(static_cast<int>(l));
    const float* delta = plan->diff(static_cast<int>(l) + 1);
    sq_a_.resize(static_cast<size_t>(n * in));
    sq_d_.resize(static_cast<size_t>(n * out));
    for (int64_t k = 0; k < n * in; ++k) sq_a_[k] = x[k] * x[k];
    for (int64_t k = 0; k < n * out; ++k) sq_d_[k] = delta[k] * delta[k];
    const std::string prefix = absl::StrCat("layers.", l, ".dense.");
    const int w = store.Find(prefix + "weight");
    const int b = store.Find(prefix + "bias");
    // (out, in) = (δ²)ᵀ (n, out)ᵀ · (x²) (n, in).
    dnnl_sgemm('T', 'N', out, in, n, static_cast<float>(n), sq_d_.data(), out, sq_a_.data(), in,
               0.0f, m_.data() + store.offset(w), in);
    if (b >= 0) {
      float* mb = m_.data() + store.offset(b);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < out; ++j) mb[j] += static_cast<float>(n) * sq_d_[i * out + j];
      }
    }
  }
  const float lambda = static_cast<float>(lambda_);
  for (int64_t i = 0; i < size_; ++i) {
    m_[i] = static_cast<float>(std::pow(m_[i] + lambda, kPreconditionerExponent));
  }
}

absl::StatusOr<HfStepResult> HessianFree::Step(const float* x, const LossTargets& targets,
                                               int64_t n, int64_t step) {
  HfStepResult res;
  const int64_t in = NumElements(net_->input_shape());
  const int64_t d = NumElements(net_->output_shape());
  ParamStore& store = net_->params();

  // The gradient on the whole batch, and the preconditioner from the same tape.
  ASSIGN_OR_RETURN(Plan * grad_plan, net_->GetPlan(n, Mode::kTrain));
  std::memcpy(grad_plan->input(), x, sizeof(float) * n * in);
  RETURN_IF_ERROR(grad_plan->Forward(step));
  res.loss = ComputeLoss(loss_, grad_plan->output(), n, d, targets, grad_plan->diff(loss_at_));
  if (!std::isfinite(res.loss.sum)) return res;
  const double f0 = res.loss.sum / static_cast<double>(n);
  RETURN_IF_ERROR(grad_plan->Backward(loss_at_));
  std::copy(store.grads(), store.grads() + size_, grad_.begin());
  std::copy(store.values(), store.values() + size_, theta0_.begin());
  Preconditioner(grad_plan);

  // The curvature batch: its tape stays fixed through CG and the ρ computation.
  const int64_t nc = curvature_batch(n);
  auto& product = products_[nc];
  if (product == nullptr) {
    ASSIGN_OR_RETURN(product, GaussNewtonProduct::Create(net_, nc, loss_, loss_at_));
  }
  std::memcpy(product->plan()->input(), x, sizeof(float) * nc * in);
  RETURN_IF_ERROR(product->plan()->Forward(step));
  const float lambda = static_cast<float>(lambda_);
  const MatVec damped = [&](const float* v, float* out) {
    product->Multiply(v, out);
    for (int64_t i = 0; i < size_; ++i) out[i] += lambda * v[i];
  };

  // CG on (G + λI)p = −g, warm-started from the decayed previous solution.
  for (int64_t i = 0; i < size_; ++i) scratch_[i] = -grad_[i];
  const bool warm = previous_.size() == static_cast<size_t>(size_);
  if (warm) {
    for (float& v : previous_) v *= static_cast<float>(kWarmStartDecay);
  }
  CgOptions cg;
  cg.max_iterations = config_.cg_max_iterations;
  CgResult sol = PreconditionedCg(damped, scratch_.data(), warm ? previous_.data() : nullptr,
                                  m_.data(), size_, cg);
  res.cg_iterations = sol.iterations;
  previous_ = sol.x;  // the final iterate, not the backtracked one, warm-starts the next run

  // Backtracking (§4.6): from the last saved iterate back while the loss keeps falling.
  ASSIGN_OR_RETURN(Plan * eval, net_->GetPlan(n, Mode::kEval));
  std::memcpy(eval->input(), x, sizeof(float) * n * in);
  int best = static_cast<int>(sol.saved.size()) - 1;
  double f_best = LossAt(eval, targets, sol.saved[best].second.data(), 1.0f);
  for (int j = best - 1; j >= 0; --j) {
    const double f = LossAt(eval, targets, sol.saved[j].second.data(), 1.0f);
    if (!(f < f_best)) break;
    best = j;
    f_best = f;
  }
  const std::vector<float>& p = sol.saved[best].second;
  res.backtrack_iteration = sol.saved[best].first;

  // ρ against the undamped model: q(p) − q(0) = gᵀp + ½pᵀGp.
  product->Multiply(p.data(), scratch_.data());
  const double gp = Dot(grad_.data(), p.data(), size_);
  const double model = gp + 0.5 * Dot(p.data(), scratch_.data(), size_);
  res.rho = model < 0 ? (f_best - f0) / model : -std::numeric_limits<double>::infinity();
  lambda_ = AdaptDamping(lambda_, res.rho);
  res.damping = lambda_;

  // Armijo line search from α = 1; no update when none passes.
  double alpha = 1.0, f_alpha = f_best;
  int tries = 0;
  while (!(f_alpha <= f0 + kArmijo * alpha * gp) && ++tries < kLineSearchTries) {
    alpha *= kLineSearchShrink;
    f_alpha = LossAt(eval, targets, p.data(), static_cast<float>(alpha));
  }
  if (!(f_alpha <= f0 + kArmijo * alpha * gp)) {
    alpha = 0;
    f_alpha = f0;
  }
  res.step_size = alpha;
  res.loss_after = f_alpha;
  // A backend failure inside CG or a loss evaluation: the parameters are still θ0.
  RETURN_IF_ERROR(product->status());
  RETURN_IF_ERROR(status_);
  if (alpha > 0) {
    float* theta = store.values();
    const float a = static_cast<float>(alpha);
    for (int64_t i = 0; i < size_; ++i) theta[i] = theta0_[i] + a * p[i];
  }
  return res;
}

}  // namespace cajal
