// Tensors on the CPU: a 64-byte aligned float buffer, shapes, and the parameter store that
// keeps every parameter of a network in one allocation and every gradient in another.
//
//   ParamStore store;
//   int w = store.Declare({"layers.0.dense.weight", {256, 784}, /*fan_in=*/784, /*fan_out=*/256});
//   int b = store.Declare({"layers.0.dense.bias", {256}, 784, 256, ParamRole::kBias});
//   store.Allocate();                 // one buffer for values, one for gradients
//   float* weights = store.value(w);  // a named view, stable for the store's lifetime
//
// Not thread-safe; a network and its store belong to one training thread.
#ifndef CAJAL_CORE_TENSOR_TENSOR_H_
#define CAJAL_CORE_TENSOR_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cajal {

// Dimensions of one example or of a batch, outermost first (row-major).
using Shape = std::vector<int64_t>;

int64_t NumElements(const Shape& shape);
std::string ShapeToString(const Shape& shape);  // "(1, 28, 28)"

// An owning, zero-initialized, 64-byte aligned array of floats. Movable, not copyable.
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
// named view at a fixed offset. Declare every parameter, then Allocate once.
class ParamStore {
 public:
  // Returns the index of the new parameter. Only before Allocate.
  int Declare(ParamDecl decl);
  // Fixes the offsets (trainable parameters first, in declaration order, then the buffers) and
  // allocates both buffers.
  void Allocate();

  int size() const { return static_cast<int>(decls_.size()); }
  const ParamDecl& decl(int i) const { return decls_[i]; }
  int64_t offset(int i) const { return offsets_[i]; }
  int64_t count(int i) const { return NumElements(decls_[i].shape); }
  float* value(int i) { return values_.data() + offsets_[i]; }
  float* grad(int i) { return grads_.data() + offsets_[i]; }
  const float* value(int i) const { return values_.data() + offsets_[i]; }
  // Index of the parameter called `name`, or -1.
  int Find(const std::string& name) const;

  // The whole flat buffers, for optimizers.
  float* values() { return values_.data(); }
  float* grads() { return grads_.data(); }
  const float* values() const { return values_.data(); }
  int64_t total() const { return total_; }
  // The trainable parameters occupy [0, trainable_total()); buffers (running statistics) follow.
  int64_t trainable_total() const { return trainable_total_; }

 private:
  std::vector<ParamDecl> decls_;
  std::vector<int64_t> offsets_;
  int64_t total_ = 0;
  int64_t trainable_total_ = 0;
  AlignedBuffer values_;
  AlignedBuffer grads_;
};

}  // namespace cajal

#endif  // CAJAL_CORE_TENSOR_TENSOR_H_
