#include "core/tensor/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/str_join.h"
#include "core/backend/backend.h"
#include "core/util/status_macros.h"

namespace cajal {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(const Shape& shape) {
  if (shape.size() == 1) return "(" + std::to_string(shape[0]) + ",)";
  return "(" + absl::StrJoin(shape, ", ") + ")";
}

void AlignedBuffer::Free::operator()(float* p) const { std::free(p); }

AlignedBuffer::AlignedBuffer(size_t count) : size_(count) {
  if (count == 0) return;
  // Round the byte size up to the alignment, as aligned_alloc requires.
  const size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  data_.reset(static_cast<float*>(p));
}

void AlignedBuffer::Zero() {
  if (size_ > 0) std::memset(data_.get(), 0, size_ * sizeof(float));
}

int ParamStore::Declare(ParamDecl decl) {
  offsets_.push_back(total_);
  // Keep every view 64-byte aligned so vector loads never split a cache line.
  total_ += (NumElements(decl.shape) + 15) / 16 * 16;
  decls_.push_back(std::move(decl));
  return static_cast<int>(decls_.size()) - 1;
}

absl::Status ParamStore::Allocate(Backend* backend) {
  int64_t offset = 0;
  for (bool trainable : {true, false}) {
    for (size_t i = 0; i < decls_.size(); ++i) {
      if (IsTrainable(decls_[i].role) != trainable) continue;
      offsets_[i] = offset;
      offset += (NumElements(decls_[i].shape) + 15) / 16 * 16;
    }
    if (trainable) trainable_total_ = offset;
  }
  backend_ = backend;
  const size_t bytes = static_cast<size_t>(total_) * sizeof(float);
  ASSIGN_OR_RETURN(values_, backend->Allocate(bytes));
  ASSIGN_OR_RETURN(grads_, backend->Allocate(bytes));
  return absl::OkStatus();
}

absl::Status ParamStore::ReadValues(std::vector<float>* host) const {
  host->resize(static_cast<size_t>(total_));
  return backend_->CopyToHost(host->data(), values_.get(), host->size() * sizeof(float));
}

absl::Status ParamStore::WriteValues(const std::vector<float>& host) {
  if (host.size() != static_cast<size_t>(total_)) {
    return absl::InternalError("ParamStore::WriteValues: size does not match the store");
  }
  return backend_->CopyToDevice(values_.get(), host.data(), host.size() * sizeof(float));
}

int ParamStore::Find(const std::string& name) const {
  for (int i = 0; i < size(); ++i) {
    if (decls_[i].name == name) return i;
  }
  return -1;
}

}  // namespace cajal
