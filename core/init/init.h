// Parameter initialization.
//
//   fan_in/fan_out come from each ParamDecl (in-features/out-features for dense layers,
//   channels·kernel² for convolutions).
//   random_uniform U(−range, range); random_normal N(0, std²);
//   xavier_uniform U(±gain·√(6/(fan_in+fan_out))); xavier_normal std = gain·√(2/(fan_in+fan_out));
//   he_uniform U(±√(6/fan_in)); he_normal std = √(2/fan_in); zeros.
//   kDefault is PyTorch's default for nn.Linear/nn.Conv2d: U(±1/√fan_in) for weights and biases.
// Biases get `bias` except under kDefault. PReLU slopes start at 0.25, batch-norm scale at 1
// and shift at 0 (running mean 0, running variance 1), whatever the scheme. Deterministic for a
// given seed.
#ifndef CAJAL_CORE_INIT_INIT_H_
#define CAJAL_CORE_INIT_INIT_H_

#include <cstdint>

#include "absl/status/status.h"
#include "core/tensor/tensor.h"

namespace cajal {

enum class InitKind {
  kDefault,
  kRandomUniform,
  kRandomNormal,
  kXavierUniform,
  kXavierNormal,
  kHeUniform,
  kHeNormal,
  kZeros,
};

struct InitConfig {
  InitKind kind = InitKind::kDefault;
  float range = 0.05f;
  float std = 0.05f;
  float gain = 1.0f;
  float bias = 0.0f;
};

// Writes every parameter of `store` (allocated) from the scheme and seed. Errors: the
// backend's, when the values are uploaded to device memory.
absl::Status InitializeParams(const InitConfig& config, uint64_t seed, ParamStore* store);

}  // namespace cajal

#endif  // CAJAL_CORE_INIT_INIT_H_
