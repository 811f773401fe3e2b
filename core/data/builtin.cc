// Builtin data sets: Fashion-MNIST from the Debian package, truth tables, the adding problem.
#include <algorithm>
#include <cstdlib>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/data/dataset.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

absl::Status UnknownBuiltin(const std::string& name) {
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown builtin data set \"", name, "\" (known: fashion-mnist, and, or, xor, adding)"));
}

Dataset TruthTable(const std::string& name, const int (&outputs)[4]) {
  Dataset ds;
  ds.name = "builtin " + name;
  ds.shape = {2};
  ds.count = 4;
  ds.f32 = {0, 0, 0, 1, 1, 0, 1, 1};
  ds.labels.assign(outputs, outputs + 4);
  ds.num_classes = 2;
  return ds;
}

// Hochreiter & Schmidhuber's adding problem: each step carries (value ~ U(0, 1), marker); two
// steps are marked, one in each half of the sequence; the target is the sum of their values.
Dataset Adding(const BuiltinOptions& o) {
  Dataset ds;
  ds.name = "builtin adding";
  const int t = o.sequence_length;
  ds.shape = {t, 2};
  ds.count = o.examples;
  ds.f32.assign(static_cast<size_t>(ds.count) * t * 2, 0.0f);
  ds.targets.resize(ds.count);
  ds.target_dim = 1;
  std::mt19937_64 rng(o.seed * 7919 + (o.test_split ? 1 : 0));
  std::uniform_real_distribution<float> value(0.0f, 1.0f);
  std::uniform_int_distribution<int> first(0, t / 2 - 1), second(t / 2, t - 1);
  for (int64_t e = 0; e < ds.count; ++e) {
    float* x = ds.f32.data() + e * t * 2;
    for (int s = 0; s < t; ++s) x[2 * s] = value(rng);
    const int a = first(rng), b = second(rng);
    x[2 * a + 1] = 1.0f;
    x[2 * b + 1] = 1.0f;
    ds.targets[e] = x[2 * a] + x[2 * b];
  }
  return ds;
}

// The adding problem's size for `o`, refused past kMaxDatasetBytes.
absl::Status CheckAdding(const BuiltinOptions& o, int64_t* examples) {
  if (o.sequence_length < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("builtin adding: sequence_length must be >= 2, got ", o.sequence_length));
  }
  if (o.examples < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("builtin adding: examples must be >= 1, got ", o.examples));
  }
  *examples = o.test_split ? std::max(1, o.examples / 5) : o.examples;
  const int64_t bytes = *examples * o.sequence_length * 2 * static_cast<int64_t>(sizeof(float));
  if (bytes > kMaxDatasetBytes) {
    return absl::InvalidArgumentError(absl::StrCat("builtin adding: ", *examples, " examples of ",
                                                   o.sequence_length, " steps take ", bytes,
                                                   " bytes, more than the 16 GiB limit"));
  }
  return absl::OkStatus();
}

std::string FashionMnistPrefix(const BuiltinOptions& o) {
  return BuiltinDataDir() + (o.test_split ? "/t10k" : "/train");
}

// A missing fashion-mnist file says how to get it.
absl::Status FashionMnistError(const absl::Status& s) {
  if (!absl::IsNotFound(s)) return s;
  return absl::NotFoundError(
      absl::StrCat("builtin fashion-mnist: ", s.message(),
                   " (install Debian's dataset-fashion-mnist or set CAJAL_DATA_DIR)"));
}

}  // namespace

std::string BuiltinDataDir() {
  const char* env = std::getenv("CAJAL_DATA_DIR");
  return env != nullptr && *env != '\0' ? env : kDefaultFashionMnistDir;
}

bool IsBuiltin(const std::string& name) {
  return name == "fashion-mnist" || name == "and" || name == "or" || name == "xor" ||
         name == "adding";
}

bool BuiltinHasTestSplit(const std::string& name) {
  return name == "fashion-mnist" || name == "adding";
}

absl::StatusOr<Dataset> LoadBuiltin(const std::string& name, const BuiltinOptions& options) {
  if (name == "fashion-mnist") {
    const std::string prefix = FashionMnistPrefix(options);
    absl::StatusOr<Dataset> ds =
        LoadIdx(prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz");
    if (!ds.ok()) return FashionMnistError(ds.status());
    ds->name = "builtin fashion-mnist";
    return ds;
  }
  if (name == "and") return TruthTable(name, {0, 0, 0, 1});
  if (name == "or") return TruthTable(name, {0, 1, 1, 1});
  if (name == "xor") return TruthTable(name, {0, 1, 1, 0});
  if (name == "adding") {
    int64_t examples = 0;
    RETURN_IF_ERROR(CheckAdding(options, &examples));
    BuiltinOptions o = options;
    o.examples = static_cast<int>(examples);
    return Adding(o);
  }
  return UnknownBuiltin(name);
}

absl::StatusOr<DatasetInfo> InspectBuiltin(const std::string& name, const BuiltinOptions& options) {
  DatasetInfo info;
  if (name == "fashion-mnist") {
    const std::string prefix = FashionMnistPrefix(options);
    absl::StatusOr<DatasetInfo> idx =
        InspectIdx(prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz");
    if (!idx.ok()) return FashionMnistError(idx.status());
    return idx;
  }
  if (name == "and" || name == "or" || name == "xor") {
    info.shape = {2};
    info.count = 4;
    info.num_classes = 2;
    info.bytes = 4 * 2 * sizeof(float) + 4 * sizeof(int32_t);
    return info;
  }
  if (name == "adding") {
    RETURN_IF_ERROR(CheckAdding(options, &info.count));
    info.shape = {options.sequence_length, 2};
    info.target_dim = 1;
    info.bytes = info.count * (NumElements(info.shape) + 1) * static_cast<int64_t>(sizeof(float));
    return info;
  }
  return UnknownBuiltin(name);
}

}  // namespace cajal
