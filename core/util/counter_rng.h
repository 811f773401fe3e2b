// A counter-based random generator: the number at (seed, layer, step, index) is a pure function
// of those four values, so any element of any dropout mask can be drawn independently — in
// order on the CPU, by any thread of a GPU kernel — and both backends draw the same masks.
// The mixing function is SplitMix64's finalizer (Steele, Lea and Flood 2014; Stafford's
// "Mix13" constants), applied to a Weyl sequence as SplitMix64 itself does.
//
//   const uint64_t key = StreamKey(seed, /*layer=*/3, step);
//   for (i ...) mask[i] = DropoutScale(key, i, rate);
#ifndef CAJAL_CORE_UTIL_COUNTER_RNG_H_
#define CAJAL_CORE_UTIL_COUNTER_RNG_H_

#include <cstdint>

#include "core/util/hd.h"

namespace cajal {

CAJAL_HD uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The stream of one layer at one step of a job.
CAJAL_HD uint64_t StreamKey(uint64_t seed, uint64_t layer, uint64_t step) {
  return Mix64(Mix64(Mix64(seed) ^ layer) ^ step);
}

// Uniform in [0, 1) with 24 random bits (exactly representable as a float).
CAJAL_HD float UniformAt(uint64_t key, uint64_t index) {
  return static_cast<float>(Mix64(key + (index + 1) * 0x9E3779B97F4A7C15ULL) >> 40) *
         (1.0f / 16777216.0f);
}

// Inverted dropout's mask value for element `index`: 0 with probability `rate`, else
// 1/(1 − rate).
CAJAL_HD float DropoutScale(uint64_t key, uint64_t index, float rate) {
  return UniformAt(key, index) < rate ? 0.0f : 1.0f / (1.0f - rate);
}

}  // namespace cajal

#endif  // CAJAL_CORE_UTIL_COUNTER_RNG_H_
