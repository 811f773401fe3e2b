#include "core/train/memory.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

constexpr int64_t kFloat = sizeof(float);

// What a data source holds, from its headers.
absl::StatusOr<DatasetInfo> Inspect(const DataSourceConfig& src, const char* field,
                                    bool test_split) {
  absl::StatusOr<DatasetInfo> info;
  switch (src.kind) {
    case DataSourceConfig::Kind::kBuiltin: {
      BuiltinOptions o = src.builtin_options;
      o.test_split = test_split;
      info = InspectBuiltin(src.builtin, o);
      break;
    }
    case DataSourceConfig::Kind::kIdx:
      info = InspectIdx(src.images, src.labels, src.idx);
      break;
    case DataSourceConfig::Kind::kCsv:
      info = InspectCsv(src.csv_path, src.csv);
      break;
    case DataSourceConfig::Kind::kNone:
      return absl::InvalidArgumentError(absl::StrCat(field, ": no data source given"));
  }
  if (!info.ok()) {
    return absl::Status(info.status().code(), absl::StrCat(field, ": ", info.status().message()));
  }
  if (!src.shape.empty()) {
    if (NumElements(src.shape) != NumElements(info->shape)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".shape: ", ShapeToString(src.shape), " does not hold the ",
          NumElements(info->shape), " values of an example ", ShapeToString(info->shape)));
    }
    info->shape = src.shape;
  }
  return info;
}

// A store's size for `decls`: every tensor padded to 16 floats (ParamStore::Declare).
int64_t StoreFloats(const std::vector<ParamDecl>& decls, bool trainable_only) {
  int64_t n = 0;
  for (const ParamDecl& d : decls) {
    if (!trainable_only || IsTrainable(d.role)) n += (NumElements(d.shape) + 15) / 16 * 16;
  }
  return n;
}

int StateBuffers(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kMomentum:
    case OptimizerKind::kNesterov:
    case OptimizerKind::kRmsprop:
    case OptimizerKind::kAdagrad:
      return 1;
    case OptimizerKind::kAdam:
    case OptimizerKind::kAdadelta:
      return 2;
    default:
      return 0;
  }
}

// Collects items and sums them per device.
class Ledger {
 public:
  explicit Ledger(bool device) : device_(device) {}
  void Add(std::string where, std::string what, int64_t bytes, bool on_device,
           bool whole_model = false) {
    if (bytes <= 0) return;
    const bool device = on_device && device_;
    (device ? e.device_bytes : e.host_bytes) += bytes;
    e.items.push_back({std::move(where), std::move(what), bytes, device, whole_model});
  }
  MemoryEstimate e;

 private:
  bool device_;
};

std::string Where(const std::vector<LayerSpec>& layers, size_t i) {
  return absl::StrCat("model.layers.", i, ".", LayerKindName(layers[i]));
}

// Bytes per layer of every plan: its output activations and their gradients, and what its
// kernels allocate of their own.
struct PlanBytes {
  int64_t inputs = 0;  // the input batches
  std::map<size_t, int64_t> activations, kernels;
};

// The buffers of one plan (batch, mode).
void AddPlan(const std::vector<LayerSpec>& layers, const std::vector<Shape>& shapes, int64_t batch,
             Mode mode, Backend* backend, PlanBytes* bytes) {
  const bool train = mode == Mode::kTrain;
  bytes->inputs += batch * NumElements(shapes[0]) * kFloat;
  for (size_t i = 0; i < layers.size(); ++i) {
    const int64_t b = batch * NumElements(shapes[i + 1]) * kFloat;
    bytes->activations[i] += train ? 2 * b : b;
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    KernelArgs args;
    args.batch = batch;
    args.input = shapes[i];
    args.output = shapes[i + 1];
    args.mode = mode;
    args.layer = static_cast<int>(i);
    // Shapes only: a non-null diff_src says whether the input needs a gradient.
    static float sentinel;
    args.diff_src = train && i > 0 ? &sentinel : nullptr;
    bytes->kernels[i] += backend->KernelBytes(layers[i], args);
  }
}

}  // namespace

const MemoryItem& MemoryEstimate::Biggest() const {
  static const MemoryItem kNone;
  const MemoryItem* best = nullptr;
  for (const MemoryItem& i : items) {
    if (!i.whole_model && (best == nullptr || i.bytes > best->bytes)) best = &i;
  }
  if (best != nullptr) return *best;
  return items.empty() ? kNone : items.front();
}

absl::StatusOr<MemoryEstimate> EstimateMemory(const JobConfig& c, const EstimateOptions& options) {
  Backend* backend = options.backend != nullptr ? options.backend : CpuBackend();
  Ledger ledger(!backend->host_visible());

  // The data, as Prepare loads it.
  ASSIGN_OR_RETURN(DatasetInfo train, Inspect(c.train, "data.train", false));
  std::optional<DatasetInfo> test;
  if (c.test.kind != DataSourceConfig::Kind::kNone) {
    ASSIGN_OR_RETURN(test, Inspect(c.test, "data.test", true));
  } else if (c.train.kind == DataSourceConfig::Kind::kBuiltin &&
             BuiltinHasTestSplit(c.train.builtin)) {
    ASSIGN_OR_RETURN(test, Inspect(c.train, "data.train", true));
  }
  ledger.Add("data.train", "examples", train.bytes, false);
  if (test) ledger.Add("data.test", "examples", test->bytes, false);
  const int64_t val = static_cast<int64_t>(c.validation_fraction * train.count);
  const int64_t fitted = train.count - val;
  // Index lists: the split, the epoch's order, the test indices.
  ledger.Add("data", "indices",
             (2 * train.count + val + (test ? test->count : 0)) * int64_t{sizeof(int64_t)}, false);

  // The layers, as Prepare resolves them.
  const bool classification = train.target_dim == 0;
  const int classes = std::max({train.num_classes, test ? test->num_classes : 0, 2});
  std::vector<LayerSpec> layers = c.layers;
  if (c.preset != Preset::kNone) {
    const int outputs = classification ? classes : train.target_dim;
    ASSIGN_OR_RETURN(layers, PresetLayers(c.preset, train.shape, outputs));
  }
  if (layers.empty()) return absl::InvalidArgumentError("model: set either preset or layers");
  ASSIGN_OR_RETURN(const std::vector<Shape> shapes, InferShapes(layers, train.shape));

  // Parameters, gradients and optimizer state, per layer.
  const int states = StateBuffers(c.optimizer.kind);
  int64_t total_floats = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::vector<ParamDecl> decls;
    DeclareParams(layers[i], static_cast<int>(i), shapes[i], shapes[i + 1], &decls);
    const int64_t floats = StoreFloats(decls, false);
    total_floats += floats;
    for (const ParamDecl& d : decls) ledger.e.parameters += NumElements(d.shape);
    const std::string where = Where(layers, i);
    ledger.Add(where, "parameters", floats * kFloat, true);
    ledger.Add(where, "gradients", floats * kFloat, true);
    ledger.Add(where, "optimizer state", states * floats * kFloat, true);
  }

  // Plans: the training batch and a shorter last one; evaluation batches for the validation
  // and test sets (each a full batch and its own remainder).
  PlanBytes plan_bytes;
  std::map<std::pair<int64_t, Mode>, bool> plans;
  const int64_t b = c.batch_size;
  auto plan = [&](int64_t batch, Mode mode) {
    if (batch <= 0 || plans[{batch, mode}]) return;
    plans[{batch, mode}] = true;
    AddPlan(layers, shapes, batch, mode, backend, &plan_bytes);
  };
  plan(std::min(b, fitted), Mode::kTrain);
  plan(fitted % b, Mode::kTrain);
  for (int64_t examples : {val, test ? test->count : int64_t{0}}) {
    if (examples == 0) continue;
    plan(std::min(b, examples), Mode::kEval);
    plan(examples % b, Mode::kEval);
  }
  if (c.optimizer.kind == OptimizerKind::kHessianFree) {
    // The Gauss-Newton products' own training plan at the curvature batch and their
    // R-activations (optim/gauss_newton.h).
    const int64_t hf_batch = c.optimizer.hessian_free.curvature_batch_size;
    const int64_t curvature =
        std::clamp<int64_t>(hf_batch > 0 ? hf_batch : std::min(b, fitted) / 4, 1, b);
    plan(curvature, Mode::kTrain);
    int64_t r = 0;
    for (const Shape& shape : shapes) r += curvature * NumElements(shape) * kFloat;
    ledger.Add("optimizer", "gauss-newton R-activations", r, false);
    // HF's vectors (gradient, θ0, preconditioner, warm start, scratch), CG's (x, r, y, p, Ap)
    // and the saved iterates (⌈1.3^j⌉ up to the iteration limit), each a store's size.
    int saved = 1;
    for (double g = 1; g < c.optimizer.hessian_free.cg_max_iterations; g *= 1.3) ++saved;
    ledger.Add("optimizer", "hessian-free vectors", (10 + saved) * total_floats * kFloat, false,
               /*whole_model=*/true);
  }
  ledger.Add("plans", "input batches", plan_bytes.inputs, true);
  for (size_t i = 0; i < layers.size(); ++i) {
    ledger.Add(Where(layers, i), "activations and their gradients", plan_bytes.activations[i],
               true);
    ledger.Add(Where(layers, i), "kernel buffers", plan_bytes.kernels[i], true);
  }
  // The batch's labels and targets, and host staging where the device is not host memory.
  const int64_t target_bytes = b * std::max(1, train.target_dim) * kFloat;
  ledger.Add("plans", "labels and targets", b * 4 + target_bytes, true);
  if (!backend->host_visible()) {
    ledger.Add("plans", "host staging",
               b * NumElements(train.shape) * kFloat + b * 4 + target_bytes, false);
  }
  // Saving the model or a checkpoint (and reading one back to resume): its tensors copied to
  // the host, and the file's bytes.
  ledger.Add("model file", "a copy while it is saved or read",
             (2 * (1 + states) + 1) * total_floats * kFloat, false, /*whole_model=*/true);
  if (options.ranks > 1) {
    ledger.Add("data-parallel", "gradient buckets in flight", total_floats * kFloat, false,
               /*whole_model=*/true);
  }
  if (options.include_runtime) {
    ledger.Add("runtime", "libraries and threads", kRuntimeBaselineBytes, false);
  }
  return ledger.e;
}

MemoryBudget FlagBudget(int64_t bytes, const std::string& flag) { return {bytes, flag}; }

namespace {

// A number from a one-line file, or -1 ("max", missing, unreadable).
int64_t ReadNumber(const char* path) {
  std::ifstream f(path);
  std::string text;
  if (!(f >> text)) return -1;
  int64_t v = 0;
  return absl::SimpleAtoi(text, &v) ? v : -1;
}

// A field of /proc/meminfo or /proc/self/status, in bytes ("MemAvailable:  1234 kB").
int64_t ProcField(const char* path, const std::string& field) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream in(line.substr(field.size() + 1));
    int64_t kb = 0;
    if (in >> kb) return kb * 1024;
  }
  return -1;
}

}  // namespace

MemoryBudget ProcessMemoryBudget() {
  // cgroup v2: the limit and what the group uses now (this process, and anything else in it).
  const int64_t max = ReadNumber("/sys/fs/cgroup/memory.max");
  const int64_t rss = std::max<int64_t>(ProcField("/proc/self/status", "VmRSS"), 0);
  const int64_t used_beyond_baseline = std::max<int64_t>(0, rss - kRuntimeBaselineBytes);
  if (max > 0) {
    const int64_t current = std::max<int64_t>(ReadNumber("/sys/fs/cgroup/memory.current"), rss);
    const int64_t free = max - std::max<int64_t>(0, current - kRuntimeBaselineBytes);
    return {std::max<int64_t>(0, free / 10 * 9),
            absl::StrCat("the cgroup's memory.max ", FormatBytes(max),
                         " less what is in use and "
                         "10%")};
  }
  const int64_t available = ProcField("/proc/meminfo", "MemAvailable");
  if (available > 0) {
    return {std::max<int64_t>(0, (available - used_beyond_baseline) / 10 * 9),
            absl::StrCat("the machine's available memory ", FormatBytes(available), " less 10%")};
  }
  return {INT64_MAX, "no memory limit found"};
}

absl::Status CheckBudget(const MemoryEstimate& e, const MemoryBudget& budget) {
  if (e.total_bytes() <= budget.bytes) return absl::OkStatus();
  const MemoryItem& big = e.Biggest();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the job needs an estimated ", FormatBytes(e.total_bytes()),
      e.device_bytes > 0 ? absl::StrCat(" (", FormatBytes(e.device_bytes), " on the device)")
                         : std::string(),
      " but the memory budget is ", FormatBytes(budget.bytes), " (", budget.source,
      "); the biggest part: ", big.where, ": ", FormatBytes(big.bytes), " of ", big.what,
      ". Make the model or training.batch_size smaller, or give the job more memory"));
}

std::string FormatBytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1e12) return absl::StrFormat("%.1f TB", b / 1e12);
  if (b >= 1e9) return absl::StrFormat("%.1f GB", b / 1e9);
  if (b >= 1e6) return absl::StrFormat("%.1f MB", b / 1e6);
  if (b >= 1e3) return absl::StrFormat("%.0f KB", b / 1e3);
  return absl::StrCat(bytes, " B");
}

absl::StatusOr<int64_t> ParseBytes(const std::string& text) {
  std::string t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  size_t digits = 0;
  while (digits < t.size() && (absl::ascii_isdigit(t[digits]) || t[digits] == '.')) ++digits;
  double number = 0;
  if (digits == 0 || !absl::SimpleAtod(t.substr(0, digits), &number) || number < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a size; write e.g. 4GB, 512MiB or 1000000"));
  }
  std::string unit = t.substr(digits);
  unit = std::string(absl::StripAsciiWhitespace(unit));
  static const std::map<std::string, double> kUnits = {{"", 1},          {"b", 1},
                                                       {"k", 1e3},       {"kb", 1e3},
                                                       {"m", 1e6},       {"mb", 1e6},
                                                       {"g", 1e9},       {"gb", 1e9},
                                                       {"t", 1e12},      {"tb", 1e12},
                                                       {"kib", 1024},    {"mib", 1 << 20},
                                                       {"gib", 1 << 30}, {"tib", 1099511627776.0}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\": unknown unit \"", unit, "\" (B, KB, MB, GB, TB, KiB, ...)"));
  }
  const double bytes = number * it->second;
  if (bytes > 9.2e18)
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is too large"));
  return static_cast<int64_t>(bytes);
}

std::string FormatEstimate(const MemoryEstimate& e) {
  std::string out = absl::StrFormat("%-28s %-34s %12s\n", "where", "what", "bytes");
  for (const MemoryItem& i : e.items) {
    absl::StrAppendFormat(&out, "%-28s %-34s %12s%s\n", i.where, i.what, FormatBytes(i.bytes),
                          i.device ? " (device)" : "");
  }
  absl::StrAppendFormat(&out, "parameters=%d host_bytes=%d device_bytes=%d total=%s\n",
                        e.parameters, e.host_bytes, e.device_bytes, FormatBytes(e.total_bytes()));
  return out;
}

}  // namespace cajal
