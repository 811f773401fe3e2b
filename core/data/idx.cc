// MNIST's IDX files: a big-endian header (magic: 0, 0, type 0x08 = u8, number of dimensions;
// then one u32 per dimension), then the data. zlib's gz reader reads gzip and raw files alike.
//
// The header is trusted for nothing. A raw file's size must equal what the header declares
// before a byte of data is allocated. A gzip stream's length is unknown until it has been
// inflated, so the buffer grows in steps as data arrives (never past the declared size), and a
// stream that ends early or runs long is an error after at most one step of allocation.
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/data/dataset.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Bytes inflated per gzread call.
constexpr unsigned kReadChunk = 1 << 20;

uint32_t BigEndian(const unsigned char* b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

// One IDX file being read: its name for messages, whether errors may quote it, the open
// stream and what its header declares.
struct IdxFile {
  std::string path;
  std::string name;  // for messages
  bool redact = false;
  GzFile f;
  bool compressed = false;
  int64_t header_bytes = 0;
  std::vector<int64_t> dims;
  int64_t total = 0;  // data bytes the header declares

  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
  }
};

// After a short read: a corrupt compressed stream (or an I/O error) is reported as such, not as
// a short file. zlib's Z_BUF_ERROR means the input ended early, which is the caller's
// "truncated". (Fix: a corrupt stream used to be reported as "shorter than its header", since
// gzread returns -1 on the first read that inflates the bad block.)
absl::Status StreamError(const IdxFile& file) {
  int err = Z_OK;
  const char* msg = gzerror(file.f.get(), &err);
  if (err == Z_DATA_ERROR || err == Z_ERRNO || err == Z_MEM_ERROR || err == Z_STREAM_ERROR) {
    // zlib's message is "<path>: <what>"; keep the what (zlib's words, not the file's).
    absl::string_view what = msg != nullptr ? msg : "";
    absl::ConsumePrefix(&what, file.path + ": ");
    return file.Error(absl::StrCat("corrupt gzip stream (", what, ")"));
  }
  return absl::OkStatus();
}

// The size of the file at `path` in bytes, or -1.
int64_t FileSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_size);
}

// Opens `path`, reads and checks the header of an IDX file of u8 values with `want_dims`
// dimensions. For a raw file, also its size against the header.
absl::Status OpenIdx(const std::string& path, const std::string& name, bool redact, int want_dims,
                     IdxFile* file) {
  file->path = path;
  file->name = name.empty() ? path : name;
  file->redact = redact;
  file->f.reset(gzopen(path.c_str(), "rb"));
  if (!file->f) {
    return absl::NotFoundError(absl::StrCat(file->name, ": cannot open: ", std::strerror(errno)));
  }
  gzbuffer(file->f.get(), 1 << 17);
  unsigned char magic[4];
  if (gzread(file->f.get(), magic, 4) != 4) {
    RETURN_IF_ERROR(StreamError(*file));
    return file->Error("not an IDX file (shorter than its header)");
  }
  file->compressed = gzdirect(file->f.get()) == 0;
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] != want_dims) {
    const std::string kind = want_dims == 3 ? "u8 images" : "u8 labels";
    if (redact) return file->Error(absl::StrCat("not an IDX file of ", kind, " (wrong magic)"));
    return file->Error(absl::StrCat("not an IDX file of ", kind, " (magic 0x",
                                    absl::Hex(BigEndian(magic), absl::kZeroPad8),
                                    ", expected 0x0000080", want_dims, ")"));
  }
  file->dims.clear();
  file->total = 1;
  for (int i = 0; i < want_dims; ++i) {
    unsigned char b[4];
    if (gzread(file->f.get(), b, 4) != 4) {
      RETURN_IF_ERROR(StreamError(*file));
      return file->Error("truncated IDX header");
    }
    const int64_t d = BigEndian(b);
    if (d == 0 || d > (int64_t{1} << 31)) {
      return file->Error(redact ? absl::StrCat("bad dimension ", i)
                                : absl::StrCat("bad dimension ", i, " = ", d));
    }
    file->dims.push_back(d);
    file->total *= d;
    if (file->total > kMaxDatasetBytes) return file->Error("IDX data larger than 16 GiB");
  }
  file->header_bytes = 4 + 4 * int64_t{want_dims};
  if (file->compressed) return absl::OkStatus();
  const int64_t size = FileSize(path);
  if (size < 0) return file->Error(absl::StrCat("cannot stat: ", std::strerror(errno)));
  const int64_t data_bytes = size - file->header_bytes;
  if (data_bytes < file->total) {
    return file->Error(redact ? absl::StrCat("truncated: ", data_bytes,
                                             " bytes of data, fewer than its header declares")
                              : absl::StrCat("truncated: header promises ", file->total,
                                             " bytes of data, file has ", data_bytes));
  }
  if (data_bytes > file->total) {
    return file->Error(
        redact ? "has data past what its header describes"
               : absl::StrCat("has data past the ", file->total, " bytes its header describes"));
  }
  return absl::OkStatus();
}

// The header declared more than the stream held: after `done` bytes, the stream ended.
absl::Status Truncated(const IdxFile& file, int64_t done) {
  RETURN_IF_ERROR(StreamError(file));
  if (file.redact) {
    return file.Error(
        absl::StrCat("truncated: ", done, " bytes of data, fewer than its header declares"));
  }
  return file.Error(
      absl::StrCat("truncated: header promises ", file.total, " bytes of data, file has ", done));
}

// After the declared data: nothing may follow, and the stream must be intact.
absl::Status CheckEnd(const IdxFile& file) {
  unsigned char extra;
  if (gzread(file.f.get(), &extra, 1) == 1) {
    return file.Error(file.redact ? "has data past what its header describes"
                                  : absl::StrCat("has data past the ", file.total,
                                                 " bytes its header describes"));
  }
  int err = 0;
  gzerror(file.f.get(), &err);
  if (err != Z_OK && err != Z_STREAM_END) return file.Error("corrupt gzip stream");
  return absl::OkStatus();
}

// Reads the declared data into `data`. A raw file's size was checked, so its buffer is
// allocated at once; a gzip stream's grows by at most max(kLoadStepBytes, half its size)
// beyond what has arrived.
absl::Status ReadData(IdxFile* file, std::vector<uint8_t>* data) {
  data->clear();
  if (!file->compressed) data->reserve(static_cast<size_t>(file->total));
  int64_t done = 0;
  while (done < file->total) {
    if (data->size() == data->capacity()) {
      const int64_t grow = std::max(kLoadStepBytes, done / 2);
      data->reserve(static_cast<size_t>(std::min(file->total, done + grow)));
    }
    const int64_t room = static_cast<int64_t>(data->capacity()) - done;
    const unsigned chunk = static_cast<unsigned>(std::min<int64_t>(room, kReadChunk));
    data->resize(static_cast<size_t>(done + chunk));
    const int got = gzread(file->f.get(), data->data() + done, chunk);
    if (got <= 0) {
      data->resize(static_cast<size_t>(done));
      break;
    }
    done += got;
    data->resize(static_cast<size_t>(done));
  }
  if (done != file->total) return Truncated(*file, done);
  return CheckEnd(*file);
}

// Counts a gzip stream's data bytes through a small buffer, stopping one byte past the
// declared size: whether the stream holds exactly what the header says, in constant memory.
absl::Status CountData(IdxFile* file) {
  std::vector<unsigned char> buffer(kReadChunk);
  int64_t done = 0;
  while (done <= file->total) {
    const int got = gzread(file->f.get(), buffer.data(), kReadChunk);
    if (got <= 0) break;
    done += got;
  }
  if (done < file->total) return Truncated(*file, done);
  if (done > file->total) {
    return file->Error(file->redact ? "has data past what its header describes"
                                    : absl::StrCat("has data past the ", file->total,
                                                   " bytes its header describes"));
  }
  return CheckEnd(*file);
}

// gzip's trailer ends with ISIZE, the uncompressed length mod 2^32 (RFC 1952). -1 if unreadable.
int64_t GzipTrailerSize(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f || std::fseek(f.get(), -4, SEEK_END) != 0) return -1;
  unsigned char b[4];
  if (std::fread(b, 1, 4, f.get()) != 4) return -1;
  return (int64_t{b[3]} << 24) | (int64_t{b[2]} << 16) | (int64_t{b[1]} << 8) | b[0];
}

// Opens both files and checks their headers against each other, before any data is read.
absl::Status OpenPair(const std::string& images_path, const std::string& labels_path,
                      const IdxOptions& o, IdxFile* images, IdxFile* labels) {
  RETURN_IF_ERROR(OpenIdx(images_path, o.images_name, o.redact_content, 3, images));
  RETURN_IF_ERROR(OpenIdx(labels_path, o.labels_name, o.redact_content, 1, labels));
  if (images->dims[0] != labels->dims[0]) {
    if (o.redact_content) {
      return absl::InvalidArgumentError(absl::StrCat(images->name, " and ", labels->name,
                                                     " declare different numbers of examples"));
    }
    return absl::InvalidArgumentError(absl::StrCat(images->name, " has ", images->dims[0],
                                                   " images but ", labels->name, " has ",
                                                   labels->dims[0], " labels"));
  }
  return absl::OkStatus();
}

int NumClasses(const std::vector<uint8_t>& labels) {
  int max_label = 0;
  for (uint8_t l : labels) max_label = std::max<int>(max_label, l);
  return max_label + 1;
}

}  // namespace

absl::StatusOr<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path,
                                const IdxOptions& options) {
  IdxFile images, labels;
  RETURN_IF_ERROR(OpenPair(images_path, labels_path, options, &images, &labels));
  Dataset ds;
  ds.name = images.name;
  std::vector<uint8_t> label_bytes;
  RETURN_IF_ERROR(ReadData(&labels, &label_bytes));
  RETURN_IF_ERROR(ReadData(&images, &ds.u8));
  ds.count = images.dims[0];
  ds.shape = {1, images.dims[1], images.dims[2]};
  ds.labels.assign(label_bytes.begin(), label_bytes.end());
  ds.num_classes = NumClasses(label_bytes);
  return ds;
}

absl::StatusOr<DatasetInfo> InspectIdx(const std::string& images_path,
                                       const std::string& labels_path, const IdxOptions& options) {
  IdxFile images, labels;
  RETURN_IF_ERROR(OpenPair(images_path, labels_path, options, &images, &labels));
  if (images.compressed) {
    // The trailer is cheap and right for the usual single-member file; a mismatch (a lying
    // header, or a multi-member file) is settled by counting.
    const int64_t expected = (images.header_bytes + images.total) & 0xffffffff;
    if (GzipTrailerSize(images.path) != expected) RETURN_IF_ERROR(CountData(&images));
  }
  std::vector<uint8_t> label_bytes;
  RETURN_IF_ERROR(ReadData(&labels, &label_bytes));
  DatasetInfo info;
  info.count = images.dims[0];
  info.shape = {1, images.dims[1], images.dims[2]};
  info.num_classes = NumClasses(label_bytes);
  info.bytes = images.total + info.count * static_cast<int64_t>(sizeof(int32_t));
  return info;
}

}  // namespace cajal
