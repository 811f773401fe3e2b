// Backend parity (STYLE.md 15): one list of layer cases, each run on two backends from the same
// parameters, inputs and output gradient, comparing the output, the input gradient, every
// parameter gradient, the running statistics after the step, and the evaluation-mode output.
// A new backend inherits every case by adding one instantiation.
//
//   for (const ParityCase& c : ParityCases()) CheckLayerParity(c, CpuBackend(), other);
//
// Tolerance (float32, stated): each element a of the candidate and b of the reference must
// satisfy |a − b| <= kParityRelTol · max(|b|, kParityFloor · max_j |b_j|): relative 1e-4, with
// elements smaller than a tenth of the tensor's largest compared at that tenth (their relative
// error is the rounding of sums whose terms are as large as the tensor's largest).
#ifndef CAJAL_TESTS_UNIT_BACKEND_PARITY_H_
#define CAJAL_TESTS_UNIT_BACKEND_PARITY_H_

#include <algorithm>
#include <cmath>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "core/backend/backend.h"
#include "core/layers/layers.h"
#include "core/loss/loss.h"
#include "core/optim/update.h"
#include "core/train/network.h"
#include "gtest/gtest.h"

namespace cajal {

inline constexpr double kParityRelTol = 1e-4;
inline constexpr double kParityFloor = 0.1;
// The step whose dropout mask both backends draw.
inline constexpr int64_t kParityStep = 7;

struct ParityCase {
  std::string name;
  std::vector<LayerSpec> layers;
  Shape input;  // one example
  int64_t batch = 4;
  // Inputs ±(0.2 + 0.05·k) in a random order (distinct: no ties in a max-pooling window);
  // else ±uniform(0.2, 1.5) (away from the kinks of relu and the threshold unit).
  bool separated_input = false;
  bool needs_conv = false;  // backends without a convolution skip it
};

// Test names and failure messages show the case's name.
inline void PrintTo(const ParityCase& c, std::ostream* os) { *os << c.name; }

inline std::vector<ParityCase> ParityCases() {
  using A = Activation;
  RecurrentSpec lstm{RecurrentCell::kLstm, 4};
  RecurrentSpec peephole = lstm;
  peephole.peephole = true;
  RecurrentSpec gru{RecurrentCell::kGru, 4};
  RecurrentSpec rnn_tanh{RecurrentCell::kRnnTanh, 5};
  RecurrentSpec rnn_relu{RecurrentCell::kRnnRelu, 3};
  auto bidir = [](RecurrentSpec r) {
    r.bidirectional = true;
    return r;
  };
  auto seqs = [](RecurrentSpec r, int layers) {
    r.return_sequences = true;
    r.layers = layers;
    return r;
  };
  Conv2dSpec conv{4, 3, 1, 1};
  Conv2dSpec strided{6, 3, 2, 1, 2, 1, true};
  Conv2dSpec grouped{4, 3, 1, 0, 1, 2, false};
  std::vector<ParityCase> cases = {
      {"dense", {DenseSpec{6}}, {10}, 5},
      {"dense_no_bias_image_input", {DenseSpec{3, false}}, {2, 3, 4}, 3},
      {"linear", {ActivationSpec{A::kLinear}}, {9}},
      {"sigmoid", {ActivationSpec{A::kSigmoid}}, {9}},
      {"tanh", {ActivationSpec{A::kTanh}}, {9}},
      {"relu", {ActivationSpec{A::kRelu}}, {9}},
      {"leaky_relu", {ActivationSpec{A::kLeakyRelu, 0.1f}}, {9}},
      {"leaky_relu_negative_slope", {ActivationSpec{A::kLeakyRelu, -0.2f}}, {9}},
      {"prelu_flat", {ActivationSpec{A::kPrelu}}, {7}},
      {"prelu_image", {ActivationSpec{A::kPrelu}}, {3, 4, 5}},
      {"prelu_sequence", {ActivationSpec{A::kPrelu}}, {6, 4}},
      {"softmax", {ActivationSpec{A::kSoftmax}}, {7}},
      {"softmax_sequence", {ActivationSpec{A::kSoftmax}}, {3, 5}},
      {"threshold", {ThresholdSpec{0.1f}}, {8}},
      {"dropout", {DropoutSpec{0.3f}}, {40}},
      {"flatten", {FlattenSpec{}}, {2, 3, 4}},
      {"dense_relu_dense", {DenseSpec{8}, ActivationSpec{A::kRelu}, DenseSpec{3}}, {6}, 5},
      {"max_pool", {Pool2dSpec{true, 2}}, {2, 6, 6}, 3, true},
      {"max_pool_overlapping_padded", {Pool2dSpec{true, 3, 2, 1}}, {2, 7, 7}, 3, true},
      {"avg_pool", {Pool2dSpec{false, 2}}, {2, 6, 6}, 3},
      {"avg_pool_overlapping_padded", {Pool2dSpec{false, 3, 2, 1}}, {2, 7, 7}, 3},
      {"lrn_alexnet", {LrnSpec{}}, {7, 3, 3}, 2},
      {"lrn_size3", {LrnSpec{3, 1e-2f, 0.75f, 1.0f}}, {4, 3, 2}, 2},
      {"lrn_even_size", {LrnSpec{4, 1e-2f, 0.5f, 2.0f}}, {6, 2, 2}, 2},
      {"batch_norm_image", {BatchNormSpec{}}, {3, 4, 4}, 4},
      {"batch_norm_flat", {BatchNormSpec{0.8f, 1e-3f}}, {6}, 5},
      {"rnn_tanh", {RecurrentSpec(rnn_tanh)}, {5, 3}, 3},
      {"rnn_relu_sequences", {seqs(rnn_relu, 1)}, {4, 3}, 3},
      {"lstm", {RecurrentSpec(lstm)}, {5, 3}, 3},
      {"lstm_peephole", {RecurrentSpec(peephole)}, {5, 3}, 3},
      {"lstm_peephole_bidirectional_stacked", {seqs(bidir(peephole), 2)}, {4, 3}, 2},
      {"lstm_image_rows", {RecurrentSpec(lstm)}, {2, 5, 3}, 2},
      {"lstm_bidirectional_last_step", {bidir(lstm)}, {5, 3}, 3},
      {"gru", {RecurrentSpec(gru)}, {5, 3}, 3},
      {"gru_bidirectional_stacked", {seqs(bidir(gru), 2)}, {4, 3}, 2},
      {"rnn_one_step", {RecurrentSpec(rnn_tanh)}, {1, 3}, 3},
      {"conv2d", {Conv2dSpec(conv)}, {3, 6, 6}, 2, false, true},
      {"conv2d_strided_dilated", {Conv2dSpec(strided)}, {2, 9, 9}, 2, false, true},
      {"conv2d_grouped_no_bias", {Conv2dSpec(grouped)}, {4, 5, 5}, 2, false, true},
  };
  return cases;
}

// max over elements of |a − b| / (kParityRelTol · max(|b|, kParityFloor · max|b|)): <= 1 passes.
inline double ParityError(const std::vector<float>& a, const std::vector<float>& b) {
  double largest = 0;
  for (float v : b) largest = std::max(largest, std::abs(static_cast<double>(v)));
  const double floor = std::max(kParityFloor * largest, 1e-30);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double bound = kParityRelTol * std::max(std::abs(static_cast<double>(b[i])), floor);
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]) / bound);
    if (std::isnan(a[i]) != std::isnan(b[i])) worst = INFINITY;
  }
  return worst;
}

// Host copies of `count` floats of backend memory.
inline std::vector<float> ReadBack(Backend* backend, const float* p, int64_t count) {
  std::vector<float> host(static_cast<size_t>(count));
  const absl::Status s = backend->CopyToHost(host.data(), p, host.size() * sizeof(float));
  EXPECT_TRUE(s.ok()) << s;
  return host;
}

// What one backend computed for a case.
struct ParityRun {
  std::vector<float> output, input_grad, grads, values_after, eval_output;
};

inline ParityRun RunParityCase(const ParityCase& c, Backend* backend, uint64_t seed) {
  ParityRun run;
  std::vector<LayerSpec> layers = c.layers;
  // A linear activation in front: diff(1) is the gradient of the input of the layers under
  // test (the network's own input gets none).
  layers.insert(layers.begin(), ActivationSpec{Activation::kLinear});
  absl::StatusOr<std::unique_ptr<Network>> net = Network::Create(layers, c.input, backend, {seed});
  EXPECT_TRUE(net.ok()) << net.status();
  if (!net.ok()) return run;
  ParamStore& store = (*net)->params();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0), magnitude(0.2, 1.5);
  std::vector<float> values(static_cast<size_t>(store.total()));
  for (int k = 0; k < store.size(); ++k) {
    const ParamRole role = store.decl(k).role;
    for (int64_t i = 0; i < store.count(k); ++i) {
      double v = 0.5 * uniform(rng);
      if (role == ParamRole::kScale || role == ParamRole::kRunningVar) v = 1.0 + v;
      values[static_cast<size_t>(store.offset(k) + i)] = static_cast<float>(v);
    }
  }
  EXPECT_TRUE(store.WriteValues(values).ok());
  const int top = static_cast<int>(layers.size());
  absl::StatusOr<Plan*> plan = (*net)->GetPlan(c.batch, Mode::kTrain);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return run;
  const int64_t in_count = c.batch * NumElements(c.input);
  std::vector<float> input(static_cast<size_t>(in_count));
  std::vector<int64_t> order(input.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::shuffle(order.begin(), order.end(), rng);
  for (size_t i = 0; i < input.size(); ++i) {
    const double m =
        c.separated_input ? 0.2 + 0.05 * static_cast<double>(order[i]) / 2 : magnitude(rng);
    input[i] = static_cast<float>(uniform(rng) < 0 ? -m : m);
  }
  const int64_t out_count = c.batch * NumElements((*net)->output_shape());
  std::vector<float> r(static_cast<size_t>(out_count));
  for (float& v : r) v = static_cast<float>(uniform(rng));
  EXPECT_TRUE(backend->CopyToDevice((*plan)->input(), input.data(), input.size() * 4).ok());
  EXPECT_TRUE(backend->CopyToDevice((*plan)->diff(top), r.data(), r.size() * 4).ok());
  const absl::Status fwd = (*plan)->Forward(kParityStep);
  EXPECT_TRUE(fwd.ok()) << fwd;
  const absl::Status bwd = (*plan)->Backward(top);
  EXPECT_TRUE(bwd.ok()) << bwd;
  run.output = ReadBack(backend, (*plan)->output(), out_count);
  run.input_grad = ReadBack(backend, (*plan)->diff(1), in_count);
  run.grads = ReadBack(backend, store.grads(), store.trainable_total());
  EXPECT_TRUE(store.ReadValues(&run.values_after).ok());
  absl::StatusOr<Plan*> eval = (*net)->GetPlan(c.batch, Mode::kEval);
  EXPECT_TRUE(eval.ok()) << eval.status();
  if (!eval.ok()) return run;
  EXPECT_TRUE(backend->CopyToDevice((*eval)->input(), input.data(), input.size() * 4).ok());
  EXPECT_TRUE((*eval)->Forward(0).ok());
  run.eval_output = ReadBack(backend, (*eval)->output(), out_count);
  return run;
}

// Runs `c` on both backends and compares everything they computed.
inline void CheckLayerParity(const ParityCase& c, Backend* reference, Backend* candidate) {
  SCOPED_TRACE(c.name + ": " + candidate->name() + " against " + reference->name());
  const ParityRun want = RunParityCase(c, reference, 11);
  const ParityRun got = RunParityCase(c, candidate, 11);
  ASSERT_EQ(got.output.size(), want.output.size());
  EXPECT_LE(ParityError(got.output, want.output), 1.0) << "forward output";
  EXPECT_LE(ParityError(got.input_grad, want.input_grad), 1.0) << "input gradient";
  EXPECT_LE(ParityError(got.eval_output, want.eval_output), 1.0) << "evaluation output";
  ASSERT_EQ(got.grads.size(), want.grads.size());
  ASSERT_EQ(got.values_after.size(), want.values_after.size());
  // Every parameter's gradient, and every value after the step (batch norm's running
  // statistics move in training), one tensor at a time.
  std::vector<LayerSpec> layers = c.layers;
  layers.insert(layers.begin(), ActivationSpec{Activation::kLinear});
  absl::StatusOr<std::unique_ptr<Network>> net = Network::Create(layers, c.input, CpuBackend());
  ASSERT_TRUE(net.ok());
  const ParamStore& store = (*net)->params();
  for (int k = 0; k < store.size(); ++k) {
    const auto begin = static_cast<size_t>(store.offset(k));
    const auto end = begin + static_cast<size_t>(store.count(k));
    const std::string& name = store.decl(k).name;
    if (IsTrainable(store.decl(k).role)) {
      EXPECT_LE(ParityError({got.grads.begin() + begin, got.grads.begin() + end},
                            {want.grads.begin() + begin, want.grads.begin() + end}),
                1.0)
          << "gradient of " << name;
    }
    EXPECT_LE(ParityError({got.values_after.begin() + begin, got.values_after.begin() + end},
                          {want.values_after.begin() + begin, want.values_after.begin() + end}),
              1.0)
        << "value after the step of " << name;
  }
}

}  // namespace cajal

#endif  // CAJAL_TESTS_UNIT_BACKEND_PARITY_H_
