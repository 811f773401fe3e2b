#include "core/collective/collective.h"

namespace cajal {
namespace {

class SingleProcess : public Collective {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  std::string name() const override { return "single process"; }
  absl::Status AllReduceSum(float*, int64_t) override { return absl::OkStatus(); }
  absl::Status AllReduceSum(double*, int64_t) override { return absl::OkStatus(); }
  absl::StatusOr<Request> StartAllReduce(float*, int64_t) override { return 0; }
  absl::Status Wait(Request) override { return absl::OkStatus(); }
  void Poll() override {}
  absl::Status Broadcast(float*, int64_t, int) override { return absl::OkStatus(); }
  absl::Status Broadcast(std::string*, int) override { return absl::OkStatus(); }
  absl::Status Barrier() override { return absl::OkStatus(); }
  void Abort(const std::string&, int) override {}
};

}  // namespace

std::unique_ptr<Collective> SingleProcessCollective() { return std::make_unique<SingleProcess>(); }

}  // namespace cajal
