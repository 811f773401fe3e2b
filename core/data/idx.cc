// MNIST's IDX files: a big-endian header (magic: 0, 0, type 0x08 = u8, number of dimensions;
// then one u32 per dimension), then the data. zlib's gz reader reads gzip and raw files alike.
#include <zlib.h>

#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/data/dataset.h"

namespace cajal {
namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

uint32_t BigEndian(const unsigned char* b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

// After a short read: a corrupt compressed stream (or an I/O error) is reported as such, not as
// a short file. zlib's Z_BUF_ERROR means the input ended early, which is the caller's
// "truncated". (Fix: a corrupt stream used to be reported as "shorter than its header", since
// gzread returns -1 on the first read that inflates the bad block.)
absl::Status StreamError(gzFile_s* f, const std::string& path) {
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  if (err == Z_DATA_ERROR || err == Z_ERRNO || err == Z_MEM_ERROR || err == Z_STREAM_ERROR) {
    // zlib's message is "<path>: <what>"; keep the what.
    absl::string_view what = msg != nullptr ? msg : "";
    absl::ConsumePrefix(&what, path + ": ");
    return absl::InvalidArgumentError(absl::StrCat(path, ": corrupt gzip stream (", what, ")"));
  }
  return absl::OkStatus();
}

// Reads an IDX file of u8 values with `want_dims` dimensions; returns the dims and the data.
absl::Status ReadIdx(const std::string& path, int want_dims, std::vector<int64_t>* dims,
                     std::vector<uint8_t>* data) {
  GzFile f(gzopen(path.c_str(), "rb"));
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  gzbuffer(f.get(), 1 << 17);
  unsigned char magic[4];
  if (gzread(f.get(), magic, 4) != 4) {
    if (absl::Status s = StreamError(f.get(), path); !s.ok()) return s;
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an IDX file (shorter than its header)"));
  }
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] != want_dims) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not an IDX file of ", want_dims == 3 ? "u8 images" : "u8 labels", " (magic 0x",
        absl::Hex(BigEndian(magic), absl::kZeroPad8), ", expected 0x0000080", want_dims, ")"));
  }
  int64_t total = 1;
  dims->clear();
  for (int i = 0; i < want_dims; ++i) {
    unsigned char b[4];
    if (gzread(f.get(), b, 4) != 4) {
      if (absl::Status s = StreamError(f.get(), path); !s.ok()) return s;
      return absl::InvalidArgumentError(absl::StrCat(path, ": truncated IDX header"));
    }
    const int64_t d = BigEndian(b);
    if (d == 0 || d > (int64_t{1} << 31)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": bad dimension ", i, " = ", d));
    }
    dims->push_back(d);
    total *= d;
    if (total > (int64_t{1} << 34)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": IDX data larger than 16 GiB"));
    }
  }
  data->resize(static_cast<size_t>(total));
  int64_t done = 0;
  while (done < total) {
    const unsigned chunk = static_cast<unsigned>(std::min<int64_t>(total - done, 1 << 30));
    const int got = gzread(f.get(), data->data() + done, chunk);
    if (got <= 0) break;
    done += got;
  }
  if (done != total) {
    if (absl::Status s = StreamError(f.get(), path); !s.ok()) return s;
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated: header promises ", total,
                                                   " bytes of data, file has ", done));
  }
  unsigned char extra;
  if (gzread(f.get(), &extra, 1) == 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": has data past the ", total, " bytes its header describes"));
  }
  int err = 0;
  gzerror(f.get(), &err);
  if (err != Z_OK && err != Z_STREAM_END) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": corrupt gzip stream"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path) {
  Dataset ds;
  ds.name = images_path;
  std::vector<int64_t> image_dims, label_dims;
  std::vector<uint8_t> labels;
  if (absl::Status s = ReadIdx(images_path, 3, &image_dims, &ds.u8); !s.ok()) return s;
  if (absl::Status s = ReadIdx(labels_path, 1, &label_dims, &labels); !s.ok()) return s;
  if (image_dims[0] != label_dims[0]) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, " has ", image_dims[0],
                                                   " images but ", labels_path, " has ",
                                                   label_dims[0], " labels"));
  }
  ds.count = image_dims[0];
  ds.shape = {1, image_dims[1], image_dims[2]};
  ds.labels.assign(labels.begin(), labels.end());
  int max_label = 0;
  for (uint8_t l : labels) max_label = std::max<int>(max_label, l);
  ds.num_classes = max_label + 1;
  return ds;
}

}  // namespace cajal
