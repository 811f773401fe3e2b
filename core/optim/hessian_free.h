// Hessian-free optimization (Martens 2010, "Deep learning via Hessian-free optimization"): each
// update minimizes the damped quadratic model
//   q(p) = f(θ) + gᵀp + ½ pᵀ(G + λI)p,   G = Jᵀ H_L J (Gauss-Newton, optim/gauss_newton.h)
// by preconditioned conjugate gradient, then backtracks over CG's saved iterates, adapts λ by
// the reduction ratio ρ and takes an Armijo line search. docs/hessian-free.md has the details
// and the evidence.
//
//   ASSIGN_OR_RETURN(auto hf, HessianFree::Create(net, loss, loss_at, config.hessian_free));
//   ASSIGN_OR_RETURN(HfStepResult r, hf->Step(x, targets, n, step));  // per gradient batch
//
// Constants (Martens 2010 and the three public implementations named in the reference): CG
// warm start 0.95·previous solution, cap cg_max_iterations (250), stop when
// (φ_i − φ_{i−k})/φ_i < k·5e-4 with k = max(10, 0.1·i), preconditioner
// [diag(Σ_i ∇f_i²)/N + λ]^0.75 from exact per-example gradients, iterates kept at ⌈1.3^j⌉,
// λ·3/2 when ρ < 1/4 and λ·2/3 when ρ > 3/4, line search α ← 0.8α until
// f(θ + αp) ≤ f(θ) + 10⁻²·α·gᵀp (at most 60 tries, else no update).
//
// Not thread-safe: belongs to the network's training thread. Host memory (CPU backend) only.
#ifndef CAJAL_CORE_OPTIM_HESSIAN_FREE_H_
#define CAJAL_CORE_OPTIM_HESSIAN_FREE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/loss/loss.h"
#include "core/optim/gauss_newton.h"
#include "core/optim/optimizer.h"
#include "core/train/network.h"

namespace cajal {

// ---- Preconditioned conjugate gradient on A·x = b, A symmetric positive definite.

struct CgOptions {
  int max_iterations = 250;
  double epsilon = 5e-4;  // Martens' relative-progress tolerance
  double gamma = 1.3;     // iterates are kept at i = ⌈gamma^j⌉
  // Also stop when rᵀM⁻¹r ≤ this·bᵀM⁻¹b: the residual is at float round-off.
  double residual_tolerance = 1e-12;
};

struct CgResult {
  int iterations = 0;
  bool converged_by_progress = false;  // Martens' relative-progress rule stopped it
  bool converged_by_residual = false;  // the residual reached round-off (else: the cap)
  std::vector<float> x;                // the final iterate
  // (i, x_i) at ⌈gamma^j⌉ and the final iterate, in increasing i, for backtracking.
  std::vector<std::pair<int, std::vector<float>>> saved;
  std::vector<double> phi;  // φ(x_i) = ½xᵀAx − bᵀx for i = 0..iterations
};

// out = A·v for vectors of n floats.
using MatVec = std::function<void(const float* v, float* out)>;

// Minimizes φ(x) = ½xᵀAx − bᵀx from x0 (null: zero) with the diagonal preconditioner `m`
// (null: none; else every entry > 0).
CgResult PreconditionedCg(const MatVec& a, const float* b, const float* x0, const float* m,
                          int64_t n, const CgOptions& options);

// ---- Levenberg-Marquardt damping.

// λ·3/2 when ρ < 1/4 (the model overestimated the reduction, or ρ is NaN), λ·2/3 when ρ > 3/4,
// else λ.
double AdaptDamping(double lambda, double rho);

// ---- The optimizer.

struct HfStepResult {
  LossOutput loss;  // on the gradient batch at the parameters before the update
  int cg_iterations = 0;
  int backtrack_iteration = 0;  // the CG iteration whose iterate was taken
  double rho = 0;               // reduction ratio of the backtracked step
  double damping = 0;           // λ after this update's adaptation
  double step_size = 0;         // the line search's α; 0: no update was made
  double loss_after = 0;        // mean loss on the gradient batch after the update
};

class HessianFree {
 public:
  // `loss` and `loss_at` as the training loop uses them (see GaussNewtonProduct::Create).
  // Errors: kInvalidArgument naming an unsupported layer; bad settings.
  static absl::StatusOr<std::unique_ptr<HessianFree>> Create(Network* net, const LossConfig& loss,
                                                             int loss_at,
                                                             const HessianFreeConfig& config);

  // One update from a gradient batch: x (n, input...) normalized inputs, `targets` of n
  // examples. The curvature batch is the batch's first min(n, curvature_batch_size) examples.
  // `step` seeds the plans' Forward. A non-finite loss returns at once with no update.
  absl::StatusOr<HfStepResult> Step(const float* x, const LossTargets& targets, int64_t n,
                                    int64_t step);

  double damping() const { return lambda_; }
  int64_t curvature_batch(int64_t n) const;

 private:
  HessianFree() = default;
  // Mean loss on the eval plan's batch at θ0 + scale·p; restores θ0.
  double LossAt(Plan* eval, const LossTargets& targets, const float* p, float scale);
  // Writes [diag(Σ_i ∇f_i²)/N + λ]^0.75 to m_ from the gradient plan's tape.
  void Preconditioner(Plan* plan);

  Network* net_ = nullptr;
  LossConfig loss_;
  int loss_at_ = 0;
  HessianFreeConfig config_;
  double lambda_ = 1.0;
  absl::Status status_;  // the first backend error of LossAt (a loss, so it cannot return one)
  int64_t size_ = 0;
  std::map<int64_t, std::unique_ptr<GaussNewtonProduct>> products_;  // per curvature batch
  std::vector<float> theta0_, grad_, m_, previous_, scratch_;
  std::vector<float> sq_a_, sq_d_;  // squared activations / output gradients of one layer
};

}  // namespace cajal

#endif  // CAJAL_CORE_OPTIM_HESSIAN_FREE_H_
