#include "service/server/datasets.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/util/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "service/server/logging.h"
#include "service/spec/convert.h"

namespace cajal {
namespace {

using google::protobuf::util::TimeUtil;

constexpr char kIncoming[] = ".incoming";
constexpr char kDataFile[] = "data";
constexpr char kMetaFile[] = "dataset.json";
constexpr size_t kMaxNameBytes = 255;
constexpr int64_t kMaxMetaBytes = 64 << 10;
constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

std::string NewId() {
  std::random_device rd;
  std::string id;
  for (int i = 0; i < 4; ++i) absl::StrAppend(&id, absl::Hex(rd(), absl::kZeroPad8));
  return id;
}

absl::Status Errno(const std::string& what, int err) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(err));
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

// Writes all of `bytes` to `fd`.
absl::Status WriteAll(int fd, absl::string_view bytes, const std::string& what) {
  while (!bytes.empty()) {
    const ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno(what, errno);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status FsyncPath(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(absl::StrCat("cannot open ", path), errno);
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return Errno(absl::StrCat("cannot fsync ", path), err);
  return absl::OkStatus();
}

// Creates `path` with `bytes`, durably.
absl::Status WriteDurably(const std::string& path, const std::string& bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) return Errno(absl::StrCat("cannot create ", path), errno);
  absl::Status s = WriteAll(fd, bytes, absl::StrCat("cannot write ", path));
  if (s.ok() && fsync(fd) != 0) s = Errno(absl::StrCat("cannot fsync ", path), errno);
  close(fd);
  return s;
}

std::string ToJson(const v1::Dataset& d) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(d, &out, o);
  return out;
}

std::pair<int64_t, std::string> KeyOf(const v1::Dataset& d) {
  return {TimeUtil::TimestampToNanoseconds(d.create_time()), d.id()};
}

absl::Status CheckName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("header.name: must have 1 to ", kMaxNameBytes, " bytes, got ", name.size()));
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("header.name: must not contain control characters");
    }
  }
  return absl::OkStatus();
}

// The dataset in directory dir/id, or an error saying why it is not a whole one.
absl::StatusOr<v1::Dataset> ReadStored(const std::string& dir, const std::string& id) {
  const std::string meta = absl::StrCat(dir, "/", id, "/", kMetaFile);
  std::error_code ec;
  const auto meta_size = std::filesystem::file_size(meta, ec);
  if (ec || meta_size > static_cast<uintmax_t>(kMaxMetaBytes)) {
    return absl::DataLossError(absl::StrCat(meta, ": missing or too large"));
  }
  std::string json(meta_size, '\0');
  const int fd = open(meta.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(absl::StrCat("cannot open ", meta), errno);
  const ssize_t n = read(fd, json.data(), json.size());
  close(fd);
  if (n != static_cast<ssize_t>(json.size())) return absl::DataLossError(meta + ": short read");
  v1::Dataset d;
  if (!google::protobuf::util::JsonStringToMessage(json, &d).ok() || d.id() != id) {
    return absl::DataLossError(absl::StrCat(meta, ": not a data set record"));
  }
  const auto size = std::filesystem::file_size(absl::StrCat(dir, "/", id, "/", kDataFile), ec);
  if (ec || static_cast<int64_t>(size) != d.size_bytes()) {
    return absl::DataLossError(absl::StrCat(dir, "/", id,
                                            ": the data file is missing or its "
                                            "size differs from the record"));
  }
  return d;
}

}  // namespace

// ---- Upload --------------------------------------------------------------------------------

DatasetStore::Upload::Upload(DatasetStore* store, v1::Dataset dataset, std::string expected, int fd)
    : store_(store), dataset_(std::move(dataset)), expected_sha256_(std::move(expected)), fd_(fd) {}

DatasetStore::Upload::~Upload() {
  if (!done_) (void)Fail(absl::OkStatus());
}

absl::Status DatasetStore::Upload::Fail(absl::Status status) {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  std::error_code ec;
  std::filesystem::remove_all(store_->IncomingDir(dataset_.id()), ec);
  store_->Release(dataset_.size_bytes());
  done_ = true;
  return status;
}

absl::Status DatasetStore::Upload::Append(absl::string_view bytes) {
  if (done_) return absl::FailedPreconditionError("the upload has ended");
  if (static_cast<int64_t>(bytes.size()) > kMaxUploadChunkBytes) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk: ", bytes.size(), " bytes, more than the limit of ", kMaxUploadChunkBytes)));
  }
  if (received_ + static_cast<int64_t>(bytes.size()) > dataset_.size_bytes()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("chunk: more bytes than header.size_bytes (", dataset_.size_bytes(),
                     ") declared; nothing was stored")));
  }
  if (absl::Status s = WriteAll(fd_, bytes, "cannot write the upload"); !s.ok()) {
    return Fail(s);
  }
  digest_.Update(bytes);
  received_ += static_cast<int64_t>(bytes.size());
  return absl::OkStatus();
}

absl::StatusOr<v1::Dataset> DatasetStore::Upload::Commit() {
  if (done_) return absl::FailedPreconditionError("the upload has ended");
  if (received_ != dataset_.size_bytes()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("the upload ended after ", received_, " of the ", dataset_.size_bytes(),
                     " bytes header.size_bytes declared; nothing was stored")));
  }
  const std::string actual = digest_.HexDigest();
  if (actual != expected_sha256_) {
    return Fail(absl::DataLossError(absl::StrCat(
        "the received bytes have SHA-256 ", actual, " but header.sha256 is ", expected_sha256_,
        "; nothing was stored (was the file changed or corrupted on the way?)")));
  }
  if (fsync(fd_) != 0) return Fail(Errno("cannot fsync the upload", errno));
  close(fd_);
  fd_ = -1;
  dataset_.set_sha256(actual);
  // (TimeUtil::GetCurrentTime has whole seconds in protobuf 3.21; the listing order wants more.)
  *dataset_.mutable_create_time() =
      TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
  const std::string dir = store_->IncomingDir(dataset_.id());
  if (absl::Status s = WriteDurably(absl::StrCat(dir, "/", kMetaFile), ToJson(dataset_)); !s.ok()) {
    return Fail(s);
  }
  if (absl::Status s = store_->Publish(dataset_); !s.ok()) return Fail(s);
  done_ = true;
  return dataset_;
}

// ---- DatasetStore --------------------------------------------------------------------------

DatasetStore::DatasetStore(std::string dir, DatasetLimits limits, int dir_fd)
    : dir_(std::move(dir)), limits_(limits), dir_fd_(dir_fd) {}

DatasetStore::~DatasetStore() { close(dir_fd_); }

absl::StatusOr<std::unique_ptr<DatasetStore>> DatasetStore::Open(const std::string& dir,
                                                                 const DatasetLimits& limits) {
  const std::string incoming = absl::StrCat(dir, "/", kIncoming);
  std::error_code ec;
  std::filesystem::create_directories(incoming, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat(dir, ": cannot create the data set directory: ", ec.message()));
  }
  // Whatever an interrupted upload or deletion left behind.
  for (const auto& entry : std::filesystem::directory_iterator(incoming, ec)) {
    std::filesystem::remove_all(entry.path(), ec);
    if (ec) return Errno(absl::StrCat("cannot remove ", entry.path().string()), ec.value());
  }
  const int fd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(absl::StrCat("cannot open ", dir), errno);
  std::unique_ptr<DatasetStore> store(new DatasetStore(dir, limits, fd));
  RETURN_IF_ERROR(store->Load());
  return store;
}

absl::Status DatasetStore::Load() {
  std::error_code ec;
  absl::MutexLock lock(&mu_);
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string id = entry.path().filename().string();
    if (!IsDatasetId(id) || !entry.is_directory()) continue;
    absl::StatusOr<v1::Dataset> d = ReadStored(dir_, id);
    if (!d.ok()) {
      Log(LogLevel::kWarning, "skipping a data set directory that is not a whole data set",
          {{"dataset_id", id}, {"error", d.status().message()}});
      continue;
    }
    by_id_[id] = KeyOf(*d);
    by_time_[KeyOf(*d)] = *d;
    used_ += d->size_bytes();
  }
  if (ec) return Errno(absl::StrCat("cannot list ", dir_), ec.value());
  return absl::OkStatus();
}

std::string DatasetStore::IncomingDir(const std::string& id) const {
  return absl::StrCat(dir_, "/", kIncoming, "/", id);
}

void DatasetStore::Release(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  reserved_ -= bytes;
}

int64_t DatasetStore::used_bytes() const {
  absl::MutexLock lock(&mu_);
  return used_;
}

int64_t DatasetStore::reserved_bytes() const {
  absl::MutexLock lock(&mu_);
  return reserved_;
}

absl::StatusOr<std::unique_ptr<DatasetStore::Upload>> DatasetStore::Begin(
    const v1::UploadDatasetHeader& header) {
  RETURN_IF_ERROR(CheckName(header.name()));
  if (header.size_bytes() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("header.size_bytes: must be > 0, got ", header.size_bytes()));
  }
  if (!IsSha256Hex(header.sha256())) {
    return absl::InvalidArgumentError("header.sha256: must be 64 hex characters");
  }
  const int64_t size = header.size_bytes();
  if (size > limits_.max_dataset_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("header.size_bytes: ", size, " bytes is more than this server accepts (",
                     "--max_dataset_bytes=", limits_.max_dataset_bytes, ")"));
  }
  {
    absl::MutexLock lock(&mu_);
    const int64_t free = limits_.max_total_bytes - used_ - reserved_;
    if (size > free) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the server's data set quota (--max_datasets_bytes=", limits_.max_total_bytes, ") has ",
          std::max<int64_t>(free, 0), " bytes free and the upload needs ", size,
          "; delete data sets you no longer need (DeleteDataset, cajal delete-dataset)"));
    }
    reserved_ += size;
  }
  v1::Dataset d;
  d.set_id(NewId());
  d.set_name(header.name());
  d.set_size_bytes(size);
  const std::string dir = IncomingDir(d.id());
  if (mkdir(dir.c_str(), 0750) != 0) {
    Release(size);
    return Errno(absl::StrCat("cannot create ", dir), errno);
  }
  const int fd = open(absl::StrCat(dir, "/", kDataFile).c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) {
    const int err = errno;
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    Release(size);
    return Errno(absl::StrCat("cannot create the upload in ", dir), err);
  }
  std::string sha = header.sha256();
  std::transform(sha.begin(), sha.end(), sha.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::unique_ptr<Upload>(new Upload(this, std::move(d), std::move(sha), fd));
}

absl::Status DatasetStore::Publish(const v1::Dataset& dataset) {
  const std::string from = IncomingDir(dataset.id());
  const std::string to = absl::StrCat(dir_, "/", dataset.id());
  RETURN_IF_ERROR(FsyncPath(from));
  if (rename(from.c_str(), to.c_str()) != 0) {
    return Errno(absl::StrCat("cannot move the upload to ", to), errno);
  }
  if (absl::Status s = FsyncPath(dir_); !s.ok()) {
    // Visible, but not yet durable: take it back rather than report a data set that a crash
    // could lose.
    std::error_code ec;
    std::filesystem::remove_all(to, ec);
    return s;
  }
  absl::MutexLock lock(&mu_);
  by_id_[dataset.id()] = KeyOf(dataset);
  by_time_[KeyOf(dataset)] = dataset;
  used_ += dataset.size_bytes();
  reserved_ -= dataset.size_bytes();
  return absl::OkStatus();
}

absl::StatusOr<v1::ListDatasetsResponse> DatasetStore::List(
    const v1::ListDatasetsRequest& r) const {
  if (r.page_size() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be >= 0, got ", r.page_size()));
  }
  const int size = r.page_size() == 0 ? kDefaultPageSize : std::min(r.page_size(), kMaxPageSize);
  std::pair<int64_t, std::string> after{INT64_MIN, ""};
  if (!r.page_token().empty()) {
    const std::vector<std::string> parts = absl::StrSplit(r.page_token(), '_');
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &after.first) || !IsDatasetId(parts[1])) {
      return absl::InvalidArgumentError("page_token: not a token this server returned");
    }
    after.second = parts[1];
  }
  v1::ListDatasetsResponse resp;
  absl::MutexLock lock(&mu_);
  for (auto it = by_time_.upper_bound(after); it != by_time_.end(); ++it) {
    if (resp.datasets_size() == size) {
      const auto& last = *std::prev(it);
      resp.set_next_page_token(absl::StrCat(last.first.first, "_", last.first.second));
      break;
    }
    *resp.add_datasets() = it->second;
  }
  return resp;
}

absl::StatusOr<v1::Dataset> DatasetStore::Get(const std::string& id) const {
  RETURN_IF_ERROR(ValidateDatasetId("id", id));
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return absl::NotFoundError(absl::StrCat("data set ", id, " not found"));
  return by_time_.at(it->second);
}

absl::Status DatasetStore::Delete(const std::string& id) {
  RETURN_IF_ERROR(ValidateDatasetId("id", id));
  v1::Dataset dataset;
  {
    // Out of the index first (jobs opening it from now on get kNotFound); no disk I/O under the
    // lock, which List takes inside a reaction.
    absl::MutexLock lock(&mu_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return absl::NotFoundError(absl::StrCat("data set ", id, " not found"));
    dataset = by_time_.at(it->second);
    by_time_.erase(it->second);
    by_id_.erase(it);
    used_ -= dataset.size_bytes();
  }
  // Out of sight in one rename (a crash after it leaves only .incoming/ to clean), then removed.
  const std::string from = absl::StrCat(dir_, "/", id);
  const std::string trash = absl::StrCat(IncomingDir(id), ".deleted");
  if (rename(from.c_str(), trash.c_str()) != 0) {
    const int err = errno;
    absl::MutexLock lock(&mu_);
    by_id_[id] = KeyOf(dataset);
    by_time_[KeyOf(dataset)] = dataset;
    used_ += dataset.size_bytes();
    return Errno(absl::StrCat("cannot remove data set ", id), err);
  }
  std::error_code ec;
  std::filesystem::remove_all(trash, ec);
  (void)FsyncPath(dir_);
  return absl::OkStatus();
}

absl::StatusOr<OpenFile> DatasetStore::OpenData(const std::string& field,
                                                const std::string& id) const {
  RETURN_IF_ERROR(ValidateDatasetId(field, id));
  const absl::Status unknown = absl::NotFoundError(
      absl::StrCat(field, ": no data set ", id, " on this server (never uploaded, or deleted)"));
  {
    absl::MutexLock lock(&mu_);
    if (by_id_.count(id) == 0) return unknown;
  }
  absl::StatusOr<OpenFile> file =
      OpenRegularFile(dir_fd_, absl::StrCat(id, "/", kDataFile), /*beneath=*/false, field,
                      absl::StrCat("data set ", id));
  if (!file.ok() && absl::IsNotFound(file.status())) return unknown;  // deleted meanwhile
  return file;
}

}  // namespace cajal
