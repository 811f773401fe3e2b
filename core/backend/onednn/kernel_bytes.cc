// What each oneDNN kernel allocates of its own, estimated from the shapes without building
// anything (Backend::KernelBytes, for the memory estimate of train/memory.h). The counts follow
// the kernel makers: the buffers they own (masks, statistics, transposed copies, recurrent
// states and gradients) and the blocked copies a convolution keeps when oneDNN picks a
// channel-blocked layout, sized with channels rounded up to 16 (the AVX-512 block; an upper
// bound on AVX2's 8).
#include <algorithm>
#include <variant>

#include "core/backend/onednn/kernels.h"

namespace cajal::onednn {
namespace {

constexpr int64_t kFloat = sizeof(float);

int64_t Round16(int64_t c) { return (c + 15) / 16 * 16; }

int64_t ConvBytes(const Conv2dSpec& c, const KernelArgs& a) {
  const bool train = a.mode == Mode::kTrain;
  const int64_t n = a.batch, ic = a.input[0], oc = c.filters, g = c.groups;
  const int64_t hw = a.input[1] * a.input[2], ohw = a.output[1] * a.output[2];
  const int64_t k2 = static_cast<int64_t>(c.kernel) * c.kernel;
  // A few input channels per group stay in the plain layout (conv.cc's few_channels).
  const int64_t src = ic / g < 8 ? 0 : n * Round16(ic) * hw;
  const int64_t dst = n * Round16(oc) * ohw;
  const int64_t w = Round16(oc / g) * Round16(ic / g) * k2 * g;
  int64_t floats = src + dst + w;
  if (train) floats += dst /*diff_dst*/ + w /*diff_w*/ + (a.diff_src != nullptr ? src : 0);
  return floats * kFloat;
}

int64_t RecurrentBytes(const RecurrentSpec& r, const KernelArgs& a) {
  const bool train = a.mode == Mode::kTrain;
  const bool image = a.input.size() == 3;
  const int64_t n = a.batch, t = image ? a.input[1] : a.input[0];
  const int64_t f = image ? a.input[0] * a.input[2] : a.input[1];
  const int64_t h = r.units, dirs = r.bidirectional ? 2 : 1;
  const int64_t gates = r.cell == RecurrentCell::kLstm ? 4 : r.cell == RecurrentCell::kGru ? 3 : 1;
  const int64_t nt = n * t;
  int64_t floats = 0;
  if (LstmRuns(r)) {
    // lstm.cc, per stacked layer: [x; h; 1] (d rows), gates, cells and h of every column, the
    // packed weights; in training the transposed packed weights, the weight gradient, the
    // recurrent gradients and the input gradient.
    for (int l = 0; l < r.layers; ++l) {
      const int64_t in = l == 0 ? f : h, d = in + h + 1;
      floats += (d + 4 * h + 2 * h) * nt + 4 * h * d;
      if (train) floats += 4 * h * h + 4 * h * d + 5 * n * h + in * nt;
    }
    if (train) floats += h * nt;
    return floats * kFloat;
  }
  // rnn.cc on oneDNN's primitives, per stacked layer: the transposed input (first layer), the
  // layer's output, the reordered weights, oneDNN's workspace (the gates and states of every
  // step); in training the gradients of all of them.
  for (int l = 0; l < r.layers; ++l) {
    const int64_t in = l == 0 ? f : h * dirs;
    const int64_t weights = dirs * gates * h * (in + h) + dirs * (gates + 1) * h * 2;
    const int64_t workspace = dirs * (gates + 2) * h * n * (t + 1);
    floats += (l == 0 ? nt * f : 0) + nt * h * dirs + weights + workspace;
    if (train) floats += nt * h * dirs * 2 + weights + (l == 0 ? nt * f : 0);
  }
  return floats * kFloat;
}

}  // namespace

int64_t KernelBytes(const LayerSpec& layer, const KernelArgs& a) {
  const bool train = a.mode == Mode::kTrain;
  const int64_t in = a.batch * NumElements(a.input);
  const int64_t out = a.batch * NumElements(a.output);
  if (const auto* c = std::get_if<Conv2dSpec>(&layer)) return ConvBytes(*c, a);
  if (const auto* r = std::get_if<RecurrentSpec>(&layer)) return RecurrentBytes(*r, a);
  if (const auto* act = std::get_if<ActivationSpec>(&layer)) {
    // prelu computes an input gradient even when nothing needs it.
    const bool scratch = act->kind == Activation::kPrelu && train && a.diff_src == nullptr;
    return scratch ? in * kFloat : 0;
  }
  if (std::holds_alternative<DropoutSpec>(layer)) return train ? in * kFloat : 0;
  if (const auto* p = std::get_if<Pool2dSpec>(&layer)) {
    // Max pooling's workspace (the arg max, up to 4 bytes an output) and the blocked copies of
    // src and dst pool.cc makes for the jit implementation.
    const int64_t blocked = Round16(a.input[0]) * (in / a.input[0] + out / a.output[0]);
    return (train && p->max ? out * 4 : 0) + blocked * kFloat * (train ? 2 : 1);
  }
  if (std::holds_alternative<LrnSpec>(layer)) return train ? 2 * out * kFloat : 0;
  if (std::holds_alternative<BatchNormSpec>(layer)) {
    if (!train) return 0;
    return (2 * a.input[0] + (a.diff_src == nullptr ? in : 0)) * kFloat;
  }
  return 0;
}

}  // namespace cajal::onednn
