// Data sets in memory, their loaders, normalization and batch assembly.
//
//   absl::StatusOr<Dataset> train = LoadIdx("train-images-idx3-ubyte.gz",
//                                           "train-labels-idx1-ubyte.gz");
//   Normalization norm = FitNormalization(NormalizeKind::kScale, *train, all_indices);
//   GatherBatch(*train, norm, indices, n, x, labels, targets);  // floats for the network
//
// 8-bit images stay 8-bit in memory (a quarter of the float size) and are converted per batch.
// Examples keep their shape: (C, H, W) images, (T, F) sequences, (F) flat features.
#ifndef CAJAL_CORE_DATA_DATASET_H_
#define CAJAL_CORE_DATA_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor/tensor.h"

namespace cajal {

struct Dataset {
  std::string name;  // for messages: a path or "builtin fashion-mnist"
  Shape shape;       // one example
  int64_t count = 0;
  // Exactly one of these holds count·NumElements(shape) features.
  std::vector<uint8_t> u8;
  std::vector<float> f32;
  // Classification: labels in [0, num_classes). Regression: targets (count, target_dim).
  int num_classes = 0;
  std::vector<int32_t> labels;
  int target_dim = 0;
  std::vector<float> targets;

  int64_t example_size() const { return NumElements(shape); }
  bool classification() const { return num_classes > 0; }
};

enum class NormalizeKind { kNone, kScale, kStandardize };

// x' = (x − shift[c]) · scale[c] per channel c (dimension 0 of an image, each feature of a
// flat or sequence example).
struct Normalization {
  std::vector<float> shift;
  std::vector<float> scale;
  int64_t channel_stride = 1;  // features per channel entry
};

// Statistics from `indices` of `data` only (the training examples).
Normalization FitNormalization(NormalizeKind kind, const Dataset& data,
                               const std::vector<int64_t>& indices);

// Writes n examples data[indices[i]] as normalized floats to x (n, shape...), and their labels
// (classification) or targets (regression) to whichever pointer is non-null.
void GatherBatch(const Dataset& data, const Normalization& norm, const int64_t* indices, int64_t n,
                 float* x, int32_t* labels, float* targets);

// MNIST's IDX format, gzip-compressed or raw: images (magic 0x803, u8, (count, H, W)) and
// labels (magic 0x801). Errors name the file and what is wrong with it.
absl::StatusOr<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path);

struct CsvOptions {
  int label_column = -1;  // negative counts from the end
  bool header = false;
  bool regression = false;
};
// One example per row, all numeric. A ragged or non-numeric row is an error naming the file and
// line. Class labels must be integers >= 0.
absl::StatusOr<Dataset> LoadCsv(const std::string& path, const CsvOptions& options);

struct BuiltinOptions {
  bool test_split = false;   // fashion-mnist: the t10k files
  int sequence_length = 50;  // adding
  int examples = 10000;      // adding
  uint64_t seed = 1;         // synthetic data
};
// "fashion-mnist" (from $CAJAL_DATA_DIR or /usr/share/datasets/fashion-mnist), "and", "or",
// "xor", "adding".
absl::StatusOr<Dataset> LoadBuiltin(const std::string& name, const BuiltinOptions& options);
bool IsBuiltin(const std::string& name);
// Whether the builtin has its own test split (fashion-mnist).
bool BuiltinHasTestSplit(const std::string& name);

// Reinterprets each example as `shape` (same element count), or explains why not.
absl::Status Reshape(const Shape& shape, Dataset* data);

}  // namespace cajal

#endif  // CAJAL_CORE_DATA_DATASET_H_
