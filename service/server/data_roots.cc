#include "service/server/data_roots.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/util/status_macros.h"

namespace cajal {
namespace {

// Read-only, never the controlling terminal, and no blocking open of a FIFO (it is refused as
// not a regular file right after).
constexpr int kOpenFlags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

long Openat2(int dir_fd, const char* path, uint64_t flags, uint64_t resolve) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = flags;
  how.resolve = resolve;
  return syscall(SYS_openat2, dir_fd, path, &how, sizeof(how));
}

// Collapses repeated '/' and "." segments; keeps ".." for the kernel to judge. "" for "/".
std::string Normalize(const std::string& path) {
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (p != ".") parts.emplace_back(p);
  }
  return (path.empty() || path[0] != '/' ? "" : "/") + absl::StrJoin(parts, "/");
}

// The part of `path` below `dir`, if `path` is `dir` or lies lexically beneath it.
bool Below(const std::string& path, const std::string& dir, std::string* relative) {
  if (dir == "/") {
    *relative = path.substr(1);
    return true;
  }
  if (path.compare(0, dir.size(), dir) != 0) return false;
  if (path.size() == dir.size()) {
    *relative = ".";
    return true;
  }
  if (path[dir.size()] != '/') return false;
  *relative = path.substr(dir.size() + 1);
  return true;
}

// The path the kernel reports for an open descriptor.
std::string FdPath(int fd) {
  char buf[PATH_MAX + 1];
  const ssize_t n = readlink(absl::StrCat("/proc/self/fd/", fd).c_str(), buf, PATH_MAX);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

bool Openat2Works(int dir_fd) {
  const long fd = Openat2(dir_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_BENEATH);
  if (fd < 0) return false;
  close(static_cast<int>(fd));
  return true;
}

}  // namespace

OpenFile::OpenFile(OpenFile&& other) noexcept : fd_(other.fd_), size_(other.size_) {
  other.fd_ = -1;
}

OpenFile& OpenFile::operator=(OpenFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    size_ = other.size_;
    other.fd_ = -1;
  }
  return *this;
}

OpenFile::~OpenFile() {
  if (fd_ >= 0) close(fd_);
}

std::string OpenFile::proc_path() const { return absl::StrCat("/proc/self/fd/", fd_); }

absl::StatusOr<OpenFile> OpenRegularFile(int dir_fd, const std::string& path, bool beneath,
                                         const std::string& field, const std::string& shown) {
  const long fd =
      beneath ? Openat2(dir_fd, path.c_str(), kOpenFlags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
              : openat(dir_fd, path.c_str(), kOpenFlags);
  if (fd < 0) {
    const int err = errno;
    switch (err) {
      case ENOENT:
      case ENOTDIR:
        return absl::NotFoundError(
            absl::StrCat(field, ": no such file under the data roots: ", shown));
      case EXDEV:
      case ELOOP:
        return absl::PermissionDeniedError(absl::StrCat(
            field, ": ", shown, " leads outside the data roots (through .. or a symbolic link)"));
      case EACCES:
      case EPERM:
        return absl::PermissionDeniedError(
            absl::StrCat(field, ": ", shown, ": the server may not read it"));
      default:
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": ", shown, ": cannot open: ", std::strerror(err)));
    }
  }
  OpenFile file(static_cast<int>(fd), 0);
  struct stat st;
  if (fstat(file.fd(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", shown, " is not a regular file"));
  }
  return OpenFile(std::move(file));
}

absl::StatusOr<std::unique_ptr<DataRoots>> DataRoots::Create(const std::vector<std::string>& dirs,
                                                             Mechanism mechanism) {
  std::unique_ptr<DataRoots> roots(new DataRoots());
  char cwd[PATH_MAX];
  const std::string base = getcwd(cwd, sizeof(cwd)) != nullptr ? cwd : "/";
  for (const std::string& dir : dirs) {
    if (dir.empty()) return absl::InvalidArgumentError("--data_roots: an empty directory name");
    Root root;
    root.dir = Normalize(dir[0] == '/' ? dir : base + "/" + dir);
    if (root.dir.empty()) root.dir = "/";
    root.fd = open(root.dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root.fd < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--data_roots: ", dir, ": not a directory: ", std::strerror(errno)));
    }
    roots->roots_.push_back(root);  // owns the fd from here
    char resolved[PATH_MAX];
    if (realpath(root.dir.c_str(), resolved) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--data_roots: ", dir, ": cannot resolve: ", std::strerror(errno)));
    }
    roots->roots_.back().resolved = resolved;
  }
  const bool openat2 = roots->roots_.empty() || Openat2Works(roots->roots_[0].fd);
  if (mechanism == Mechanism::kOpenat2 && !openat2) {
    return absl::FailedPreconditionError(absl::StrCat(
        "openat2 is not available (", std::strerror(errno), "); Linux >= 5.6 is needed"));
  }
  roots->mechanism_ =
      mechanism == Mechanism::kProcCheck || !openat2 ? Mechanism::kProcCheck : Mechanism::kOpenat2;
  return roots;
}

DataRoots::~DataRoots() {
  for (const Root& r : roots_) close(r.fd);
}

std::vector<std::string> DataRoots::dirs() const {
  std::vector<std::string> out;
  for (const Root& r : roots_) out.push_back(r.dir);
  return out;
}

const char* DataRoots::MechanismName(Mechanism m) {
  switch (m) {
    case Mechanism::kOpenat2:
      return "openat2(RESOLVE_BENEATH)";
    case Mechanism::kProcCheck:
      return "openat + /proc/self/fd check";
    case Mechanism::kAuto:
      break;
  }
  return "auto";
}

absl::Status DataRoots::Outside(const std::string& field, const std::string& shown) const {
  std::vector<std::string> dirs = this->dirs();
  return absl::PermissionDeniedError(absl::StrCat(
      field, ": ", shown, " is outside the server's data roots (",
      dirs.empty() ? "none configured" : absl::StrJoin(dirs, ", "),
      "): upload the file with `cajal upload` and name the data set, or ask the operator to add "
      "its directory to --data_roots"));
}

absl::StatusOr<OpenFile> DataRoots::OpenBeneath(const Root& root, const std::string& relative,
                                                const std::string& field,
                                                const std::string& shown) const {
  if (mechanism_ == Mechanism::kOpenat2) {
    return OpenRegularFile(root.fd, relative, /*beneath=*/true, field, shown);
  }
  ASSIGN_OR_RETURN(OpenFile file,
                   OpenRegularFile(root.fd, relative, /*beneath=*/false, field, shown));
  std::string unused;
  if (!Below(FdPath(file.fd()), root.resolved, &unused)) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, ": ", shown, " leads outside the data roots (through .. or a symbolic link)"));
  }
  return file;
}

absl::StatusOr<OpenFile> DataRoots::Open(const std::string& field, const std::string& path) const {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  if (path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": contains a NUL character"));
  }
  if (path[0] == '/') {
    const std::string normal = Normalize(path);
    for (const Root& root : roots_) {
      std::string relative;
      if (Below(normal, root.dir, &relative) || Below(normal, root.resolved, &relative)) {
        return OpenBeneath(root, relative, field, path);
      }
    }
    return Outside(field, path);
  }
  // Relative: beneath the first root that has it.
  absl::Status first_error = Outside(field, path);
  for (const Root& root : roots_) {
    absl::StatusOr<OpenFile> file = OpenBeneath(root, path, field, path);
    if (file.ok() || !absl::IsNotFound(file.status())) return file;
    first_error = file.status();
  }
  return first_error;
}

}  // namespace cajal
