#include "service/tfevents/event_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "service/tfevents/crc32c.h"
#include "tensorboard/event.pb.h"

namespace cajal {
namespace {

// TensorBoard reads any file whose name contains "tfevents"; this is the name TensorFlow's own
// writer gives, and the version string it writes first.
constexpr char kFilePrefix[] = "events.out.tfevents.";
constexpr char kFileVersion[] = "brain.Event:2";
constexpr char kScalarsPlugin[] = "scalars";
constexpr int kMaxNameTries = 100;

absl::Status OsError(int err, const std::string& what, const std::string& path) {
  const std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  if (err == EACCES || err == EROFS || err == EPERM) return absl::PermissionDeniedError(msg);
  // A path component is a file, or the path names a file where a directory must be.
  if (err == ENOTDIR || err == EEXIST || err == EISDIR) return absl::FailedPreconditionError(msg);
  return absl::InternalError(msg);
}

std::string Hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

double NowSeconds() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

void PutLe64(uint64_t v, char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

void PutLe32(uint32_t v, char* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

}  // namespace

std::string EventWriter::Frame(const std::string& data) {
  std::string frame(8 + 4 + data.size() + 4, '\0');
  PutLe64(data.size(), &frame[0]);
  PutLe32(MaskCrc32c(Crc32c(frame.data(), 8)), &frame[8]);
  std::memcpy(&frame[12], data.data(), data.size());
  PutLe32(MaskCrc32c(Crc32c(data.data(), data.size())), &frame[12 + data.size()]);
  return frame;
}

absl::StatusOr<std::unique_ptr<EventWriter>> EventWriter::Create(
    const std::string& dir, const EventWriterOptions& options) {
  if (dir.empty()) return absl::InvalidArgumentError("event file directory is empty");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return OsError(ec.value(), "cannot create directory", dir);

  const std::string base = absl::StrCat(dir, "/", kFilePrefix,
                                        static_cast<int64_t>(std::time(nullptr)), ".", Hostname());
  std::string path = base;
  int fd = -1;
  for (int attempt = 0; attempt < kMaxNameTries; ++attempt) {
    path = attempt == 0 ? base : absl::StrCat(base, ".", attempt);
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0 || errno != EEXIST) break;
  }
  if (fd < 0) return OsError(errno, "cannot create event file", path);

  std::unique_ptr<EventWriter> writer(new EventWriter(path, fd, options));
  tensorboard::Event first;
  first.set_wall_time(NowSeconds());
  first.set_file_version(kFileVersion);
  if (absl::Status s = writer->WriteRecord(first.SerializeAsString()); !s.ok()) return s;
  return writer;
}

EventWriter::~EventWriter() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status EventWriter::WriteScalars(int64_t step, const std::vector<ScalarValue>& values) {
  return WriteScalars(step, NowSeconds(), values);
}

absl::Status EventWriter::WriteScalars(int64_t step, double wall_time,
                                       const std::vector<ScalarValue>& values) {
  tensorboard::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  tensorboard::Summary* summary = event.mutable_summary();
  for (const ScalarValue& v : values) {
    tensorboard::Summary::Value* out = summary->add_value();
    out->set_tag(v.tag);
    tensorboard::SummaryMetadata* meta = out->mutable_metadata();
    meta->mutable_plugin_data()->set_plugin_name(kScalarsPlugin);
    meta->set_data_class(tensorboard::DATA_CLASS_SCALAR);
    tensorboard::TensorProto* t = out->mutable_tensor();
    t->set_dtype(tensorboard::DT_FLOAT);
    t->mutable_tensor_shape();  // present and empty: rank 0
    t->add_float_val(static_cast<float>(v.value));
  }
  return WriteRecord(event.SerializeAsString());
}

absl::Status EventWriter::WriteRecord(const std::string& data) {
  if (!failed_.ok()) return failed_;
  const std::string frame = Frame(data);
  size_t done = 0;
  while (done < frame.size()) {
    const ssize_t n = ::write(fd_, frame.data() + done, frame.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      failed_ = OsError(errno, "cannot write", path_);
      return failed_;
    }
    done += static_cast<size_t>(n);
  }
  if (options_.fsync && ::fsync(fd_) != 0) {
    failed_ = OsError(errno, "cannot fsync", path_);
    return failed_;
  }
  return absl::OkStatus();
}

}  // namespace cajal
