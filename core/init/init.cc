#include "core/init/init.h"

#include <cmath>
#include <random>
#include <vector>

#include "core/backend/backend.h"

namespace cajal {
namespace {

void FillUniform(std::mt19937_64& rng, double bound, float* p, int64_t n) {
  std::uniform_real_distribution<double> dist(-bound, bound);
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(dist(rng));
}

void FillNormal(std::mt19937_64& rng, double std, float* p, int64_t n) {
  std::normal_distribution<double> dist(0.0, std);
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(dist(rng));
}

void FillConstant(float value, float* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

}  // namespace

absl::Status InitializeParams(const InitConfig& c, uint64_t seed, ParamStore* store) {
  std::mt19937_64 rng(seed ^ 0x5DEECE66DULL);
  // Host-memory backends are written in place; others get a host copy uploaded at the end.
  const bool in_place = store->backend()->host_visible();
  std::vector<float> staged(in_place ? 0 : static_cast<size_t>(store->total()));
  for (int i = 0; i < store->size(); ++i) {
    const ParamDecl& d = store->decl(i);
    float* p = in_place ? store->value(i) : staged.data() + store->offset(i);
    const int64_t n = store->count(i);
    const double fan_in = static_cast<double>(std::max<int64_t>(d.fan_in, 1));
    const double fan_out = static_cast<double>(std::max<int64_t>(d.fan_out, 1));
    switch (d.role) {
      case ParamRole::kPreluSlope:
        FillConstant(0.25f, p, n);
        continue;
      case ParamRole::kScale:
        FillConstant(1.0f, p, n);
        continue;
      case ParamRole::kShift:
      case ParamRole::kRunningMean:
        FillConstant(0.0f, p, n);
        continue;
      case ParamRole::kRunningVar:
        FillConstant(1.0f, p, n);
        continue;
      case ParamRole::kBias:
        if (c.kind == InitKind::kDefault) {
          FillUniform(rng, 1.0 / std::sqrt(fan_in), p, n);
        } else {
          FillConstant(c.bias, p, n);
        }
        continue;
      case ParamRole::kWeight:
        break;
    }
    switch (c.kind) {
      case InitKind::kDefault:
        FillUniform(rng, 1.0 / std::sqrt(fan_in), p, n);
        break;
      case InitKind::kRandomUniform:
        FillUniform(rng, c.range, p, n);
        break;
      case InitKind::kRandomNormal:
        FillNormal(rng, c.std, p, n);
        break;
      case InitKind::kXavierUniform:
        FillUniform(rng, c.gain * std::sqrt(6.0 / (fan_in + fan_out)), p, n);
        break;
      case InitKind::kXavierNormal:
        FillNormal(rng, c.gain * std::sqrt(2.0 / (fan_in + fan_out)), p, n);
        break;
      case InitKind::kHeUniform:
        FillUniform(rng, std::sqrt(6.0 / fan_in), p, n);
        break;
      case InitKind::kHeNormal:
        FillNormal(rng, std::sqrt(2.0 / fan_in), p, n);
        break;
      case InitKind::kZeros:
        FillConstant(0.0f, p, n);
        break;
    }
  }
  return in_place ? absl::OkStatus() : store->WriteValues(staged);
}

}  // namespace cajal
