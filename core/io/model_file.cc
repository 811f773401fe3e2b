#include "core/io/model_file.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

constexpr char kMagic[8] = {'C', 'A', 'J', 'A', 'L', 'M', 'D', 'L'};

class Writer {
 public:
  template <class T>
  void Pod(const T& v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void Str(const std::string& s) {
    Pod(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void Tensors(const std::vector<NamedTensor>& ts) {
    Pod(static_cast<uint32_t>(ts.size()));
    for (const NamedTensor& t : ts) {
      Str(t.name);
      Pod(static_cast<uint32_t>(t.shape.size()));
      for (int64_t d : t.shape) Pod(d);
      out_.append(reinterpret_cast<const char*>(t.data.data()), t.data.size() * sizeof(float));
    }
  }
  void Floats(const std::vector<float>& v) {
    Pod(static_cast<uint32_t>(v.size()));
    out_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  }
  void Dims(const Shape& shape) {
    Pod(static_cast<uint32_t>(shape.size()));
    for (int64_t d : shape) Pod(d);
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(const std::string& path, const char* data, size_t size)
      : path_(path), p_(data), end_(data + size) {}
  template <class T>
  absl::Status Pod(T* v) {
    if (static_cast<size_t>(end_ - p_) < sizeof(T)) return Truncated();
    std::memcpy(v, p_, sizeof(T));
    p_ += sizeof(T);
    return absl::OkStatus();
  }
  absl::Status Str(std::string* s) {
    uint32_t n = 0;
    RETURN_IF_ERROR(Pod(&n));
    if (static_cast<size_t>(end_ - p_) < n) return Truncated();
    s->assign(p_, n);
    p_ += n;
    return absl::OkStatus();
  }
  absl::Status Tensors(std::vector<NamedTensor>* ts) {
    uint32_t count = 0;
    RETURN_IF_ERROR(Pod(&count));
    for (uint32_t i = 0; i < count; ++i) {
      NamedTensor t;
      RETURN_IF_ERROR(Str(&t.name));
      RETURN_IF_ERROR(Dims(&t.shape));
      const int64_t elements = NumElements(t.shape);
      const size_t bytes = static_cast<size_t>(elements) * sizeof(float);
      if (static_cast<size_t>(end_ - p_) < bytes) return Truncated();
      t.data.resize(static_cast<size_t>(elements));
      std::memcpy(t.data.data(), p_, bytes);
      p_ += bytes;
      ts->push_back(std::move(t));
    }
    return absl::OkStatus();
  }
  // A shape of at most 8 positive dimensions and 2^34 elements.
  absl::Status Dims(Shape* shape) {
    uint32_t rank = 0;
    RETURN_IF_ERROR(Pod(&rank));
    if (rank > 8) return Corrupt("tensor rank");
    int64_t elements = 1;
    for (uint32_t r = 0; r < rank; ++r) {
      int64_t d = 0;
      RETURN_IF_ERROR(Pod(&d));
      if (d <= 0 || d > (int64_t{1} << 32)) return Corrupt("tensor dimension");
      shape->push_back(d);
      elements *= d;
      if (elements > (int64_t{1} << 34)) return Corrupt("tensor size");
    }
    return absl::OkStatus();
  }
  absl::Status Floats(std::vector<float>* v) {
    uint32_t n = 0;
    RETURN_IF_ERROR(Pod(&n));
    if (static_cast<size_t>(end_ - p_) / sizeof(float) < n) return Truncated();
    v->resize(n);
    std::memcpy(v->data(), p_, n * sizeof(float));
    p_ += n * sizeof(float);
    return absl::OkStatus();
  }
  bool done() const { return p_ == end_; }
  absl::Status Corrupt(const char* what) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": model file is corrupt (", what, ")"));
  }

 private:
  absl::Status Truncated() {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": model file is truncated"));
  }
  std::string path_;
  const char* p_;
  const char* end_;
};

absl::Status OsError(const std::string& what, const std::string& path) {
  const int err = errno;
  const std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  if (err == EACCES || err == EROFS || err == EPERM) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

NamedTensor Capture(const std::string& name, const Shape& shape, const float* data) {
  return {name, shape, std::vector<float>(data, data + NumElements(shape))};
}

absl::Status ReadInfo(Reader* r, ModelInfo* info) {
  int32_t classes = 0, target_dim = 0;
  Normalization& norm = info->normalization;
  RETURN_IF_ERROR(r->Dims(&info->input));
  RETURN_IF_ERROR(r->Pod(&classes));
  RETURN_IF_ERROR(r->Pod(&target_dim));
  RETURN_IF_ERROR(r->Pod(&norm.channel_stride));
  RETURN_IF_ERROR(r->Floats(&norm.shift));
  RETURN_IF_ERROR(r->Floats(&norm.scale));
  if (info->input.empty() || classes < 0 || target_dim < 0 || norm.channel_stride < 1 ||
      norm.shift.size() != norm.scale.size()) {
    return r->Corrupt("model info");
  }
  info->num_classes = classes;
  info->target_dim = target_dim;
  info->present = true;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelFile> SnapshotJob(TrainingJob& job, const std::string& spec_json) {
  ModelFile f;
  f.spec_json = spec_json;
  ParamStore& store = job.network().params();
  // Host copies of the flat buffers (a memcpy on the CPU backend), captured per tensor.
  std::vector<float> host;
  RETURN_IF_ERROR(store.ReadValues(&host));
  for (int i = 0; i < store.size(); ++i) {
    f.params.push_back(
        Capture(store.decl(i).name, store.decl(i).shape, host.data() + store.offset(i)));
  }
  Optimizer& opt = job.optimizer();
  f.optimizer_steps = opt.steps();
  for (size_t k = 0; k < opt.state_names().size(); ++k) {
    RETURN_IF_ERROR(store.backend()->CopyToHost(host.data(), opt.state(static_cast<int>(k)),
                                                host.size() * sizeof(float)));
    for (int i = 0; i < store.size(); ++i) {
      f.optimizer_state.push_back(Capture(opt.state_names()[k] + "/" + store.decl(i).name,
                                          store.decl(i).shape, host.data() + store.offset(i)));
    }
  }
  f.trainer = job.state();
  f.info.present = true;
  f.info.input = job.network().input_shape();
  f.info.num_classes = job.train_data().num_classes;
  f.info.target_dim = job.train_data().target_dim;
  f.info.normalization = job.normalization();
  return f;
}

absl::Status RestoreJob(const ModelFile& file, bool with_state, TrainingJob* job) {
  ParamStore& store = job->network().params();
  std::vector<float> host(static_cast<size_t>(store.total()));
  // Checks every name and shape of `ts` against the store and places the values in `host`.
  auto place = [&](const std::vector<NamedTensor>& ts, const std::string& prefix) -> absl::Status {
    if (ts.size() != static_cast<size_t>(store.size())) {
      return absl::InvalidArgumentError(absl::StrCat("model file has ", ts.size(), " ", prefix,
                                                     "tensors, the network has ", store.size()));
    }
    for (int i = 0; i < store.size(); ++i) {
      const NamedTensor& t = ts[i];
      if (t.name != prefix + store.decl(i).name || t.shape != store.decl(i).shape) {
        return absl::InvalidArgumentError(
            absl::StrCat("model file tensor ", t.name, " ", ShapeToString(t.shape),
                         " does not match the network's ", prefix, store.decl(i).name, " ",
                         ShapeToString(store.decl(i).shape)));
      }
      std::copy(t.data.begin(), t.data.end(), host.begin() + store.offset(i));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(place(file.params, ""));
  RETURN_IF_ERROR(store.WriteValues(host));
  if (!with_state) return absl::OkStatus();
  Optimizer& opt = job->optimizer();
  const size_t per = static_cast<size_t>(store.size());
  if (file.optimizer_state.size() != per * opt.state_names().size()) {
    return absl::InvalidArgumentError("model file optimizer state does not match the optimizer");
  }
  for (size_t k = 0; k < opt.state_names().size(); ++k) {
    std::vector<NamedTensor> slice(file.optimizer_state.begin() + k * per,
                                   file.optimizer_state.begin() + (k + 1) * per);
    std::fill(host.begin(), host.end(), 0.0f);
    RETURN_IF_ERROR(place(slice, opt.state_names()[k] + "/"));
    RETURN_IF_ERROR(store.backend()->CopyToDevice(opt.state(static_cast<int>(k)), host.data(),
                                                  host.size() * sizeof(float)));
  }
  opt.set_steps(file.optimizer_steps);
  job->state() = file.trainer;
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return OsError("cannot create", tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = OsError("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = OsError("cannot fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = OsError("cannot rename to", path);
    ::unlink(tmp.c_str());
    return s;
  }
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::Status WriteModelFile(const std::string& path, const ModelFile& f) {
  // One buffer of the file's exact size (header, payload, CRC), reserved up front: a model's
  // bytes are in memory once more while it is written, not three times over as a growing
  // string and its copy would be (train/memory.cc counts this).
  size_t tensor_bytes = f.spec_json.size() + f.extra.size() + 4096;
  for (const auto* ts : {&f.params, &f.optimizer_state}) {
    for (const NamedTensor& t : *ts) {
      tensor_bytes += t.name.size() + 16 + 8 * t.shape.size() + t.data.size() * sizeof(float);
    }
  }
  tensor_bytes += (f.info.normalization.shift.size() + f.info.normalization.scale.size()) * 4;
  Writer file;
  file.bytes().reserve(tensor_bytes);
  file.bytes().append(kMagic, sizeof(kMagic));
  file.Pod(kModelFormatVersion);
  const size_t length_at = file.bytes().size();
  file.Pod(uint64_t{0});  // the payload's length, patched below
  const size_t body_at = file.bytes().size();
  file.Str(f.spec_json);
  file.Tensors(f.params);
  file.Pod(f.optimizer_steps);
  file.Tensors(f.optimizer_state);
  const TrainerState& s = f.trainer;
  file.Pod(static_cast<int32_t>(s.epoch));
  file.Pod(s.batch_in_epoch);
  file.Pod(s.step);
  file.Pod(s.epoch_loss_sum);
  file.Pod(s.epoch_correct);
  file.Pod(s.epoch_seen);
  file.Pod(s.best_val_loss);
  file.Pod(static_cast<int32_t>(s.epochs_without_improvement));
  file.Pod(static_cast<uint8_t>(s.has_best));
  file.Str(f.extra);
  const ModelInfo& info = f.info;
  file.Dims(info.input);
  file.Pod(static_cast<int32_t>(info.num_classes));
  file.Pod(static_cast<int32_t>(info.target_dim));
  file.Pod(info.normalization.channel_stride);
  file.Floats(info.normalization.shift);
  file.Floats(info.normalization.scale);
  std::string& bytes = file.bytes();
  const uint64_t length = bytes.size() - body_at;
  std::memcpy(bytes.data() + length_at, &length, sizeof(length));
  file.Pod(static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(bytes.data() + body_at),
                                         static_cast<z_size_t>(length))));
  return WriteFileAtomically(path, bytes);
}

absl::StatusOr<ModelFile> ReadModelFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  constexpr size_t kHeader = sizeof(kMagic) + sizeof(uint32_t) + sizeof(uint64_t);
  if (bytes.size() < sizeof(kMagic) || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a cajal model file (bad magic)"));
  }
  if (bytes.size() < kHeader + sizeof(uint32_t)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": model file is truncated"));
  }
  uint32_t version;
  uint64_t size;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&size, bytes.data() + 12, 8);
  if (version != 1 && version != kModelFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": model format version ", version,
                                                   " is not supported (this build reads 1 to ",
                                                   kModelFormatVersion, ")"));
  }
  if (bytes.size() - kHeader - sizeof(uint32_t) != size) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": model file is truncated or has trailing data (", bytes.size(),
                     " bytes, header says ", size + kHeader + 4, ")"));
  }
  const char* body = bytes.data() + kHeader;
  uint32_t stored_crc;
  std::memcpy(&stored_crc, body + size, 4);
  const uint32_t crc = static_cast<uint32_t>(
      crc32_z(0, reinterpret_cast<const Bytef*>(body), static_cast<z_size_t>(size)));
  if (crc != stored_crc) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": model file is corrupt (checksum)"));
  }
  ModelFile f;
  Reader r(path, body, size);
  RETURN_IF_ERROR(r.Str(&f.spec_json));
  RETURN_IF_ERROR(r.Tensors(&f.params));
  RETURN_IF_ERROR(r.Pod(&f.optimizer_steps));
  RETURN_IF_ERROR(r.Tensors(&f.optimizer_state));
  TrainerState& s = f.trainer;
  int32_t epoch = 0, without = 0;
  uint8_t has_best = 0;
  RETURN_IF_ERROR(r.Pod(&epoch));
  RETURN_IF_ERROR(r.Pod(&s.batch_in_epoch));
  RETURN_IF_ERROR(r.Pod(&s.step));
  RETURN_IF_ERROR(r.Pod(&s.epoch_loss_sum));
  RETURN_IF_ERROR(r.Pod(&s.epoch_correct));
  RETURN_IF_ERROR(r.Pod(&s.epoch_seen));
  RETURN_IF_ERROR(r.Pod(&s.best_val_loss));
  RETURN_IF_ERROR(r.Pod(&without));
  RETURN_IF_ERROR(r.Pod(&has_best));
  RETURN_IF_ERROR(r.Str(&f.extra));
  if (version >= 2) RETURN_IF_ERROR(ReadInfo(&r, &f.info));
  if (!r.done()) return absl::InvalidArgumentError(absl::StrCat(path, ": model file is corrupt"));
  s.epoch = epoch;
  s.epochs_without_improvement = without;
  s.has_best = has_best != 0;
  return f;
}

}  // namespace cajal
