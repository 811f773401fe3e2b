// Where cajald may read job data: the data roots (--data_roots), directories beneath which a
// spec's data paths must lie.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<DataRoots> roots,
//                    DataRoots::Create({"/var/lib/cajal/datasets", "/srv/shared"}));
//   ASSIGN_OR_RETURN(OpenFile file, roots->Open("data.train.csv.path", "/srv/shared/a.csv"));
//   LoadCsv(file.proc_path(), ...);  // the file opened beneath the root, whatever the path names
//   now
//
// A path names a file beneath one root: an absolute path that starts with a root's directory
// (as configured, or with its symbolic links resolved), or a relative path, tried beneath each
// root in order. The file is opened from the root's directory descriptor with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS): the kernel refuses a `..` or a symbolic
// link that would leave the root, at every step of the walk, so there is no window between a
// check and the open. Where openat2 is unavailable (Linux < 5.6, or a seccomp profile that
// refuses it), the file is opened with openat and the path the kernel reports for the open
// descriptor (/proc/self/fd/N) must lie beneath the root's resolved directory; the descriptor
// that was checked is the one that is read either way.
//
// Errors name the spec field (`field`) and the path as the client gave it:
//   kPermissionDenied  outside every root (naming the roots), or a `..`/link leading out, or
//                      the server may not read it;
//   kNotFound          nothing by that name beneath the roots;
//   kInvalidArgument   not a regular file (a directory, a FIFO, a device).
//
// Thread-safe: immutable after Create.
#ifndef CAJAL_SERVICE_SERVER_DATA_ROOTS_H_
#define CAJAL_SERVICE_SERVER_DATA_ROOTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cajal {

// A file opened read-only for a job; closes it when destroyed. Move-only.
class OpenFile {
 public:
  OpenFile() = default;
  OpenFile(int fd, int64_t size) : fd_(fd), size_(size) {}
  OpenFile(OpenFile&& other) noexcept;
  OpenFile& operator=(OpenFile&& other) noexcept;
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  ~OpenFile();

  int fd() const { return fd_; }
  int64_t size() const { return size_; }
  // /proc/self/fd/N: opening it opens this very file again, even if its path has since been
  // renamed or replaced, which is how the loaders (which take paths) read it.
  std::string proc_path() const;

 private:
  int fd_ = -1;
  int64_t size_ = 0;
};

// Opens `path` (relative to `dir_fd`) read-only, refusing anything but a regular file and never
// blocking on a FIFO. Errors as above, naming `field` and `shown` (the path as the client
// gave it); errno is mapped: ENOENT/ENOTDIR → kNotFound, EXDEV/ELOOP → kPermissionDenied
// ("leads outside"), EACCES/EPERM → kPermissionDenied.
absl::StatusOr<OpenFile> OpenRegularFile(int dir_fd, const std::string& path, bool beneath,
                                         const std::string& field, const std::string& shown);

class DataRoots {
 public:
  enum class Mechanism {
    kAuto,       // openat2 when the kernel allows it, else kProcCheck
    kOpenat2,    // openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
    kProcCheck,  // openat, then /proc/self/fd/N must lie beneath the root
  };

  // Opens every root directory. kInvalidArgument naming --data_roots for a root that is not an
  // existing directory; kFailedPrecondition when kOpenat2 is asked for and unavailable.
  static absl::StatusOr<std::unique_ptr<DataRoots>> Create(const std::vector<std::string>& dirs,
                                                           Mechanism mechanism = Mechanism::kAuto);
  ~DataRoots();

  // Opens the file `path` names beneath a root (see the top of this file).
  absl::StatusOr<OpenFile> Open(const std::string& field, const std::string& path) const;

  // The roots as configured, made absolute.
  std::vector<std::string> dirs() const;
  // kOpenat2 or kProcCheck: what this process uses.
  Mechanism mechanism() const { return mechanism_; }
  static const char* MechanismName(Mechanism m);

 private:
  struct Root {
    std::string dir;       // as configured, absolute, without "." segments or repeated '/'
    std::string resolved;  // realpath(dir)
    int fd = -1;           // O_PATH | O_DIRECTORY
  };
  DataRoots() = default;
  absl::StatusOr<OpenFile> OpenBeneath(const Root& root, const std::string& relative,
                                       const std::string& field, const std::string& shown) const;
  absl::Status Outside(const std::string& field, const std::string& shown) const;

  std::vector<Root> roots_;
  Mechanism mechanism_ = Mechanism::kOpenat2;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_DATA_ROOTS_H_
