// Tensors: shapes, an aligned host buffer, memory a backend allocated, and the parameter store
// that keeps every parameter of a network in one allocation and every gradient in another.
//
//   ParamStore store;
//   int w = store.Declare({"layers.0.dense.weight", {256, 784}, /*fan_in=*/784, /*fan_out=*/256});
//   int b = store.Declare({"layers.0.dense.bias", {256}, 784, 256, ParamRole::kBias});
//   RETURN_IF_ERROR(store.Allocate(CpuBackend()));  // values and gradients, in its memory
//   float* weights = store.value(w);  // a named view, stable for the store's lifetime
//
// Not thread-safe; a network and its store belong to one training thread.
#ifndef CAJAL_CORE_TENSOR_TENSOR_H_
#define CAJAL_CORE_TENSOR_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace cajal {

class Backend;

// Dimensions of one example or of a batch, outermost first (row-major).
using Shape = std::vector<int64_t>;

int64_t NumElements(const Shape& shape);
std::string ShapeToString(const Shape& shape);  // "(1, 28, 28)"

// An owning, zero-initialized, 64-byte aligned array of floats in host memory. Movable, not
// copyable. Throws std::bad_alloc when memory runs out: for small scratch whose size the memory
// estimate bounds; sizes a client controls go through Backend::Allocate, which returns a status.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t count);
  AlignedBuffer(AlignedBuffer&&) noexcept = default;
  AlignedBuffer& operator=(AlignedBuffer&&) noexcept = default;

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  size_t size() const { return size_; }
  void Zero();

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float, Free> data_;
  size_t size_ = 0;
};

// Memory a backend allocated (Backend::Allocate): `bytes` bytes, 64-byte aligned, zero-filled,
// freed by the backend that made it. Movable, not copyable. Empty: get() == nullptr.
class DeviceBuffer {
 public:
  using Free = std::function<void(void*)>;
  DeviceBuffer() = default;
  DeviceBuffer(void* data, size_t bytes, Free free) : data_(data, std::move(free)), bytes_(bytes) {}
  DeviceBuffer(DeviceBuffer&&) noexcept = default;
  DeviceBuffer& operator=(DeviceBuffer&&) noexcept = default;

  void* get() const { return data_.get(); }
  float* floats() const { return static_cast<float*>(data_.get()); }
  int32_t* ints() const { return static_cast<int32_t*>(data_.get()); }
  size_t bytes() const { return bytes_; }

 private:
  std::unique_ptr<void, Free> data_{nullptr, [](void*) {}};
  size_t bytes_ = 0;
};

// What a parameter is for; initializers treat weights and biases differently. kRunningMean and
// kRunningVar are batch norm's running statistics: buffers the kernel updates in training and
// reads in evaluation. They live in the store so model files carry them, but they are not
// trainable: Allocate places them after every trainable parameter and optimizers stop at
// trainable_total().
enum class ParamRole { kWeight, kBias, kPreluSlope, kScale, kShift, kRunningMean, kRunningVar };

inline bool IsTrainable(ParamRole role) {
  return role != ParamRole::kRunningMean && role != ParamRole::kRunningVar;
}

// The declaration of one parameter tensor.
struct ParamDecl {
  std::string name;  // "layers.<index>.<layer>.<param>", unique in the store
  Shape shape;
  int64_t fan_in = 0;
  int64_t fan_out = 0;
  ParamRole role = ParamRole::kWeight;
};

// All parameters of a network in one buffer and all gradients in another, each parameter a
// named view at a fixed offset, in the memory of the backend that computes on them. Declare
// every parameter, then Allocate once.
class ParamStore {
 public:
  // Returns the index of the new parameter. Only before Allocate.
  int Declare(ParamDecl decl);
  // Fixes the offsets (trainable parameters first, in declaration order, then the buffers) and
  // allocates both buffers in `backend`'s memory. kResourceExhausted when they do not fit.
  absl::Status Allocate(Backend* backend);

  int size() const { return static_cast<int>(decls_.size()); }
  const ParamDecl& decl(int i) const { return decls_[i]; }
  int64_t offset(int i) const { return offsets_[i]; }
  int64_t count(int i) const { return NumElements(decls_[i].shape); }
  // Views in the backend's memory (host memory on the CPU backend).
  float* value(int i) { return values() + offsets_[i]; }
  float* grad(int i) { return grads() + offsets_[i]; }
  const float* value(int i) const { return values() + offsets_[i]; }
  // Index of the parameter called `name`, or -1.
  int Find(const std::string& name) const;

  // The whole flat buffers, for optimizers.
  float* values() { return values_.floats(); }
  float* grads() { return grads_.floats(); }
  const float* values() const { return values_.floats(); }
  int64_t total() const { return total_; }
  // The trainable parameters occupy [0, trainable_total()); buffers (running statistics) follow.
  int64_t trainable_total() const { return trainable_total_; }

  Backend* backend() const { return backend_; }
  // Host copies of the values, through the backend (a memcpy on the CPU): total() floats.
  absl::Status ReadValues(std::vector<float>* host) const;
  absl::Status WriteValues(const std::vector<float>& host);

 private:
  std::vector<ParamDecl> decls_;
  std::vector<int64_t> offsets_;
  int64_t total_ = 0;
  int64_t trainable_total_ = 0;
  Backend* backend_ = nullptr;
  DeviceBuffer values_;
  DeviceBuffer grads_;
};

}  // namespace cajal

#endif  // CAJAL_CORE_TENSOR_TENSOR_H_
