#include "core/collective/mpi/mpi_collective.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cajal {
namespace {

// MPI counts are ints: larger buffers go in pieces of this many elements.
constexpr int64_t kMaxCount = int64_t{1} << 30;

absl::Status Check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return absl::UnavailableError(absl::StrCat(call, " failed: ", std::string(text, len)));
}

class MpiCollective : public Collective {
 public:
  ~MpiCollective() override {
    for (MPI_Request& r : requests_) {
      if (r != MPI_REQUEST_NULL) MPI_Wait(&r, MPI_STATUS_IGNORE);
    }
    if (local_ != MPI_COMM_NULL) MPI_Comm_free(&local_);
    if (own_init_) MPI_Finalize();
  }

  absl::Status Init() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        return absl::InternalError("MPI_Init_thread failed");
      }
      own_init_ = true;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    if (absl::Status s = Check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_,
                                                   MPI_INFO_NULL, &local_),
                               "MPI_Comm_split_type");
        !s.ok()) {
      return s;
    }
    MPI_Comm_size(local_, &local_size_);
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(version, &len);
    library_ = std::string(version, static_cast<size_t>(len));
    if (size_t nl = library_.find_first_of(",\n"); nl != std::string::npos) library_.resize(nl);
    return absl::OkStatus();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }
  std::string name() const override { return "MPI (" + library_ + ")"; }

  absl::Status AllReduceSum(float* data, int64_t n) override {
    return Pieces(n, [&](int64_t at, int count) {
      return Check(
          MPI_Allreduce(MPI_IN_PLACE, data + at, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce");
    });
  }

  absl::Status AllReduceSum(double* data, int64_t n) override {
    return Pieces(n, [&](int64_t at, int count) {
      return Check(
          MPI_Allreduce(MPI_IN_PLACE, data + at, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce");
    });
  }

  absl::StatusOr<Request> StartAllReduce(float* data, int64_t n) override {
    // A bucket larger than an int count is rare; reduce it synchronously.
    if (n > kMaxCount) {
      if (absl::Status s = AllReduceSum(data, n); !s.ok()) return s;
      return Request{-1};
    }
    requests_.push_back(MPI_REQUEST_NULL);
    if (absl::Status s = Check(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT,
                                              MPI_SUM, MPI_COMM_WORLD, &requests_.back()),
                               "MPI_Iallreduce");
        !s.ok()) {
      return s;
    }
    return static_cast<Request>(requests_.size() - 1);
  }

  absl::Status Wait(Request request) override {
    if (request < 0) return absl::OkStatus();
    MPI_Request& r = requests_.at(static_cast<size_t>(request));
    absl::Status s = Check(MPI_Wait(&r, MPI_STATUS_IGNORE), "MPI_Wait");
    // Every request of a step is waited for; then the list starts over.
    if (std::all_of(requests_.begin(), requests_.end(),
                    [](const MPI_Request& q) { return q == MPI_REQUEST_NULL; })) {
      requests_.clear();
    }
    return s;
  }

  void Poll() override {
    for (MPI_Request& r : requests_) {
      if (r == MPI_REQUEST_NULL) continue;
      int done = 0;
      MPI_Test(&r, &done, MPI_STATUS_IGNORE);
    }
  }

  absl::Status Broadcast(float* data, int64_t n, int root) override {
    return Pieces(n, [&](int64_t at, int count) {
      return Check(MPI_Bcast(data + at, count, MPI_FLOAT, root, MPI_COMM_WORLD), "MPI_Bcast");
    });
  }

  absl::Status Broadcast(std::string* bytes, int root) override {
    long long length = static_cast<long long>(bytes->size());
    if (absl::Status s =
            Check(MPI_Bcast(&length, 1, MPI_LONG_LONG, root, MPI_COMM_WORLD), "MPI_Bcast");
        !s.ok()) {
      return s;
    }
    bytes->resize(static_cast<size_t>(length));
    return Pieces(length, [&](int64_t at, int count) {
      return Check(MPI_Bcast(bytes->data() + at, count, MPI_CHAR, root, MPI_COMM_WORLD),
                   "MPI_Bcast");
    });
  }

  absl::Status Barrier() override { return Check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

  void Abort(const std::string& message, int code) override {
    std::fprintf(stderr, "cajal: rank %d of %d: %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  template <class F>
  absl::Status Pieces(int64_t n, F&& f) {
    for (int64_t at = 0; at < n; at += kMaxCount) {
      const int count = static_cast<int>(std::min(kMaxCount, n - at));
      if (absl::Status s = f(at, count); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  bool own_init_ = false;
  int rank_ = 0;
  int size_ = 1;
  int local_size_ = 1;
  MPI_Comm local_ = MPI_COMM_NULL;
  std::string library_;
  std::vector<MPI_Request> requests_;
};

}  // namespace

bool LaunchedByMpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (std::getenv(var) != nullptr) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<Collective>> CreateMpiCollective() {
  auto c = std::make_unique<MpiCollective>();
  if (absl::Status s = c->Init(); !s.ok()) return s;
  return std::unique_ptr<Collective>(std::move(c));
}

}  // namespace cajal
