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

// Bounds every loader checks before it allocates: files are trusted for nothing, not even their
// own headers. A loader never holds more than the data it has read so far plus one growth step
// (kLoadStepBytes, or half of what it holds, whichever is larger), so a file whose header lies
// fails with a few MB of memory whatever it declares.
inline constexpr int64_t kMaxDatasetBytes = int64_t{1} << 34;  // 16 GiB of features in memory
inline constexpr int64_t kLoadStepBytes = int64_t{16} << 20;
inline constexpr int64_t kMaxCsvColumns = int64_t{1} << 20;
inline constexpr int64_t kMaxCsvRows = (int64_t{1} << 31) - 1;
inline constexpr int64_t kMaxCsvLineBytes = int64_t{64} << 20;

// What a data source holds, from its header (IDX), a bounded scan (CSV) or its definition
// (builtin), without loading the examples. bytes: what the loaded Dataset will occupy in
// memory (features as stored — u8 stays u8 —, labels/targets).
struct DatasetInfo {
  Shape shape;
  int64_t count = 0;
  // IDX: exact (the labels file is read: one byte per example). CSV: 0, unknown until loaded
  // (the scan reads no cell). Builtin: exact. 0 for regression data.
  int num_classes = 0;
  int target_dim = 0;  // regression: values per target; 0 for classification
  int64_t bytes = 0;
};

// How the loaders treat file content in their errors. The defaults suit a local run by the
// file's owner (`cajal train`); cajald sets both, because its errors go back to clients.
struct ContentOptions {
  // Errors name the file, the line and the column but quote nothing read from it: no cell
  // text, no header value. Sizes the loader measured itself (bytes, columns) may appear.
  bool redact_content = false;
};

// MNIST's IDX format, gzip-compressed or raw: images (magic 0x803, u8, (count, H, W)) and
// labels (magic 0x801). A raw file's size must match its header before anything is
// allocated; a gzip file is decompressed in steps, checked against its header as it grows.
// Errors name the file and what is wrong with it; kNotFound when a file cannot be opened.
struct IdxOptions : ContentOptions {
  // Names for messages; empty: the paths. (cajald opens files itself and hands the loader
  // /proc/self/fd/N paths; these keep the messages naming what the user named.)
  std::string images_name;
  std::string labels_name;
};
absl::StatusOr<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path,
                                const IdxOptions& options = {});
// The same checks as LoadIdx on both headers (a raw file's size; a gzip file's trailer, and
// when that disagrees, a bounded decompression counting bytes); reads the labels, not the
// images.
absl::StatusOr<DatasetInfo> InspectIdx(const std::string& images_path,
                                       const std::string& labels_path,
                                       const IdxOptions& options = {});

struct CsvOptions : ContentOptions {
  int label_column = -1;  // negative counts from the end
  bool header = false;
  bool regression = false;
  std::string name;  // for messages; empty: the path
};
// One example per row, all numeric. A ragged or non-numeric row is an error naming the file and
// line. Class labels must be integers >= 0. At most kMaxCsvRows rows, kMaxCsvColumns columns,
// kMaxCsvLineBytes per line and kMaxDatasetBytes of features; the file is scanned once for
// its shape (InspectCsv) and the memory reserved exactly before the cells are parsed.
absl::StatusOr<Dataset> LoadCsv(const std::string& path, const CsvOptions& options);
// Rows and columns by a scan that reads no cell (every row's column count is checked);
// num_classes is 0: unknown until loaded.
absl::StatusOr<DatasetInfo> InspectCsv(const std::string& path, const CsvOptions& options);

struct BuiltinOptions {
  bool test_split = false;   // fashion-mnist: the t10k files
  int sequence_length = 50;  // adding
  int examples = 10000;      // adding
  uint64_t seed = 1;         // synthetic data
};
// "fashion-mnist" (from $CAJAL_DATA_DIR or /usr/share/datasets/fashion-mnist), "and", "or",
// "xor", "adding".
absl::StatusOr<Dataset> LoadBuiltin(const std::string& name, const BuiltinOptions& options);
// From the definition; fashion-mnist's from its IDX headers (InspectIdx).
absl::StatusOr<DatasetInfo> InspectBuiltin(const std::string& name, const BuiltinOptions& options);
bool IsBuiltin(const std::string& name);
// Whether the builtin has its own test split (fashion-mnist).
bool BuiltinHasTestSplit(const std::string& name);
// The directory fashion-mnist is read from: $CAJAL_DATA_DIR, else
// /usr/share/datasets/fashion-mnist.
std::string BuiltinDataDir();

// Reinterprets each example as `shape` (same element count), or explains why not.
absl::Status Reshape(const Shape& shape, Dataset* data);

}  // namespace cajal

#endif  // CAJAL_CORE_DATA_DATASET_H_
