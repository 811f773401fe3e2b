#include "service/export/onnx_recurrent.h"

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

int Gates(RecurrentCell cell) {
  return cell == RecurrentCell::kLstm ? 4 : cell == RecurrentCell::kGru ? 3 : 1;
}

// Which of our gate blocks goes in each ONNX position (header table).
std::vector<int> OnnxGateOrder(RecurrentCell cell) {
  switch (cell) {
    case RecurrentCell::kLstm:
      return {0, 3, 1, 2};
    case RecurrentCell::kGru:
      return {1, 0, 2};
    case RecurrentCell::kRnnTanh:
    case RecurrentCell::kRnnRelu:
      break;
  }
  return {0};
}

// Appends the blocks of `block` values of `src` in `order`.
void AppendBlocks(const std::vector<float>& src, size_t block, const std::vector<int>& order,
                  std::vector<float>* out) {
  for (int b : order) {
    out->insert(out->end(), src.begin() + b * block, src.begin() + (b + 1) * block);
  }
}

}  // namespace

std::string RecurrentEmitter::Op(const std::string& op, const std::vector<std::string>& inputs) {
  return g_->Node(op, inputs, hint_.substr(0, hint_.size() - 1));
}

std::string RecurrentEmitter::Transpose(const std::string& x, const std::vector<int64_t>& perm) {
  const std::string y = Op("Transpose", {x});
  GraphBuilder::Attr(g_->last(), "perm", perm);
  return y;
}

std::string RecurrentEmitter::Reshape(const std::string& x, const std::vector<int64_t>& shape) {
  return Op("Reshape", {x, g_->Int64s(shape)});
}

absl::StatusOr<std::vector<std::string>> RecurrentEmitter::Weights(const RecurrentSpec& r, int l,
                                                                   int64_t features) {
  const int64_t h = r.units;
  const int64_t gates = Gates(r.cell);
  const int64_t dirs = r.bidirectional ? 2 : 1;
  const std::vector<int> order = OnnxGateOrder(r.cell);
  std::vector<float> w, rw, b, p;
  for (int64_t d = 0; d < dirs; ++d) {
    const std::string s = absl::StrCat("_l", l, d == 1 ? "_reverse" : "");
    ASSIGN_OR_RETURN(const NamedTensor* wih, param_("weight_ih" + s, {gates * h, features}));
    ASSIGN_OR_RETURN(const NamedTensor* whh, param_("weight_hh" + s, {gates * h, h}));
    ASSIGN_OR_RETURN(const NamedTensor* bih, param_("bias_ih" + s, {gates * h}));
    ASSIGN_OR_RETURN(const NamedTensor* bhh, param_("bias_hh" + s, {gates * h}));
    AppendBlocks(wih->data, static_cast<size_t>(h * features), order, &w);
    AppendBlocks(whh->data, static_cast<size_t>(h * h), order, &rw);
    AppendBlocks(bih->data, static_cast<size_t>(h), order, &b);
    AppendBlocks(bhh->data, static_cast<size_t>(h), order, &b);
    if (r.peephole) {
      ASSIGN_OR_RETURN(const NamedTensor* ph, param_("weight_peephole" + s, {3, h}));
      AppendBlocks(ph->data, static_cast<size_t>(h), {0, 2, 1}, &p);
    }
  }
  const std::string base = absl::StrCat(hint_, "l", l, ".");
  std::vector<std::string> names = {
      g_->Floats(base + "W", {dirs, gates * h, features}, w),
      g_->Floats(base + "R", {dirs, gates * h, h}, rw),
      g_->Floats(base + "B", {dirs, 2 * gates * h}, b),
  };
  if (r.peephole) {
    // LSTM inputs 4..6 (sequence_lens, initial_h, initial_c) are omitted: full-length
    // sequences from a zero state.
    names.insert(names.end(), {"", "", "", g_->Floats(base + "P", {dirs, 3 * h}, p)});
  }
  return names;
}

absl::StatusOr<std::string> RecurrentEmitter::Emit(const RecurrentSpec& r, const std::string& x,
                                                   const Shape& in) {
  // To (T, N, F): an image (N, C, H, W) -> (H, N, C, W) -> (H, N, C·W); a sequence (N, T, F)
  // -> (T, N, F).
  std::string seq =
      in.size() == 3 ? Reshape(Transpose(x, {2, 0, 1, 3}), {0, 0, -1}) : Transpose(x, {1, 0, 2});
  const int64_t features = in.size() == 3 ? in[0] * in[2] : in.back();
  const int64_t dirs = r.bidirectional ? 2 : 1;
  const char* op = r.cell == RecurrentCell::kLstm  ? "LSTM"
                   : r.cell == RecurrentCell::kGru ? "GRU"
                                                   : "RNN";
  std::string y;
  for (int l = 0; l < r.layers; ++l) {
    if (l > 0) {
      // Y (T, D, N, H) of the layer below -> (T, N, D·H), the directions concatenated.
      seq = Reshape(Transpose(y, {0, 2, 1, 3}), {0, 0, -1});
    }
    ASSIGN_OR_RETURN(std::vector<std::string> weights,
                     Weights(r, l, l == 0 ? features : r.units * dirs));
    std::vector<std::string> inputs = {seq};
    inputs.insert(inputs.end(), weights.begin(), weights.end());
    y = Op(op, inputs);
    onnx::NodeProto* n = g_->last();
    GraphBuilder::Attr(n, "hidden_size", int64_t{r.units});
    GraphBuilder::Attr(n, "direction", std::string(r.bidirectional ? "bidirectional" : "forward"));
    if (r.cell == RecurrentCell::kGru) GraphBuilder::Attr(n, "linear_before_reset", int64_t{1});
    if (r.cell == RecurrentCell::kRnnTanh || r.cell == RecurrentCell::kRnnRelu) {
      const std::string f = r.cell == RecurrentCell::kRnnRelu ? "Relu" : "Tanh";
      GraphBuilder::Attr(n, "activations", std::vector<std::string>(dirs, f));
    }
  }
  if (r.return_sequences) {
    // (T, D, N, H) -> (N, T, D, H) -> (N, T, D·H).
    return Reshape(Transpose(y, {2, 0, 1, 3}), {0, 0, -1});
  }
  // Step T-1 of both directions: (D, N, H) -> (N, D, H) -> (N, D·H).
  const std::string last = Op("Gather", {y, g_->Int64s({-1}, /*scalar=*/true)});
  GraphBuilder::Attr(g_->last(), "axis", int64_t{0});
  return Reshape(Transpose(last, {1, 0, 2}), {0, -1});
}

}  // namespace cajal
