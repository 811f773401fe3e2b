#include "core/backend/backend.h"

#include "core/util/status_macros.h"

namespace cajal {
namespace {

// One set of host buffers, copied with the backend's (waiting) CopyToDevice.
class CopyingUpload : public BatchUpload {
 public:
  explicit CopyingUpload(Backend* backend) : backend_(backend) {}
  absl::Status Add(size_t bytes) {
    ASSIGN_OR_RETURN(DeviceBuffer b, backend_->AllocateHost(bytes));
    parts_.push_back(std::move(b));
    return absl::OkStatus();
  }
  absl::Status Acquire() override { return absl::OkStatus(); }
  void* host(int part) const override { return parts_[static_cast<size_t>(part)].get(); }
  absl::Status Send(int part, void* dst, size_t bytes) override {
    return backend_->CopyToDevice(dst, host(part), bytes);
  }

 private:
  Backend* backend_;
  std::vector<DeviceBuffer> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BatchUpload>> Backend::MakeBatchUpload(
    const std::vector<size_t>& part_bytes) {
  auto upload = std::make_unique<CopyingUpload>(this);
  for (size_t bytes : part_bytes) RETURN_IF_ERROR(upload->Add(bytes));
  return std::unique_ptr<BatchUpload>(std::move(upload));
}

float* KernelArgs::value(std::string_view name) const {
  for (const ParamBinding& p : params) {
    if (p.name == name) return p.value;
  }
  return nullptr;
}

float* KernelArgs::grad(std::string_view name) const {
  for (const ParamBinding& p : params) {
    if (p.name == name) return p.grad;
  }
  return nullptr;
}

}  // namespace cajal
