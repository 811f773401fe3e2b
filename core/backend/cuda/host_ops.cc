#include "core/backend/cuda/host_ops.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace cajal::device {
namespace {

// Two sets of host buffers used in turn; the "device" copy is a memcpy.
class HostUpload : public BatchUpload {
 public:
  explicit HostUpload(HostOps* ops) : ops_(ops) {}
  absl::Status Init(const std::vector<size_t>& part_bytes) {
    for (auto& slot : slots_) {
      for (size_t bytes : part_bytes) {
        ASSIGN_OR_RETURN(DeviceBuffer b, ops_->AllocateHost(bytes));
        slot.push_back(std::move(b));
      }
    }
    return absl::OkStatus();
  }
  absl::Status Acquire() override {
    current_ = 1 - current_;
    return absl::OkStatus();
  }
  void* host(int part) const override { return slots_[current_][static_cast<size_t>(part)].get(); }
  absl::Status Send(int part, void* dst, size_t bytes) override {
    return ops_->CopyOnDevice(dst, host(part), bytes);
  }

 private:
  HostOps* ops_;
  std::vector<DeviceBuffer> slots_[2];
  int current_ = 1;
};

}  // namespace

absl::Status CheckGemm(const GemmArgs& g) {
  if (g.m < 0 || g.n < 0 || g.k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm: negative size m=", g.m, " n=", g.n, " k=", g.k));
  }
  const int64_t a_cols = g.trans_a ? g.m : g.k;
  const int64_t b_cols = g.trans_b ? g.k : g.n;
  if (g.lda < a_cols || g.ldb < b_cols || g.ldc < g.n) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm: leading dimensions lda=", g.lda, " ldb=", g.ldb, " ldc=", g.ldc,
                     " below the rows' widths ", a_cols, ", ", b_cols, ", ", g.n));
  }
  return absl::OkStatus();
}

absl::StatusOr<DeviceBuffer> HostOps::Allocate(size_t bytes) {
  if (bytes == 0) return DeviceBuffer();
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (p == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of (emulated device) memory: cannot allocate ", bytes, " bytes"));
  }
  std::memset(p, 0, bytes);
  return DeviceBuffer(p, bytes, [](void* q) { std::free(q); });
}

absl::Status HostOps::CopyToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
  return absl::OkStatus();
}

absl::Status HostOps::CopyToHost(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
  return absl::OkStatus();
}

absl::Status HostOps::CopyOnDevice(void* dst, const void* src, size_t bytes) {
  if (bytes > 0 && dst != src) std::memmove(dst, src, bytes);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BatchUpload>> HostOps::MakeBatchUpload(
    const std::vector<size_t>& part_bytes) {
  auto upload = std::make_unique<HostUpload>(this);
  RETURN_IF_ERROR(upload->Init(part_bytes));
  return std::unique_ptr<BatchUpload>(std::move(upload));
}

absl::Status HostOps::Gemm(const GemmArgs& g) {
  RETURN_IF_ERROR(CheckGemm(g));
  auto a = [&g](int64_t i, int64_t p) {
    return g.trans_a ? g.a[p * g.lda + i] : g.a[i * g.lda + p];
  };
  std::vector<double> row(static_cast<size_t>(g.n));
  for (int64_t i = 0; i < g.m; ++i) {
    // Sums in double, in order of p; the loops run along B's rows (or, transposed, its columns)
    // so that the inner loop reads contiguous memory.
    if (g.trans_b) {
      for (int64_t j = 0; j < g.n; ++j) {
        double sum = 0;
        for (int64_t p = 0; p < g.k; ++p) sum += static_cast<double>(a(i, p)) * g.b[j * g.ldb + p];
        row[static_cast<size_t>(j)] = sum;
      }
    } else {
      std::fill(row.begin(), row.end(), 0.0);
      for (int64_t p = 0; p < g.k; ++p) {
        const double aip = a(i, p);
        const float* b = g.b + p * g.ldb;
        for (int64_t j = 0; j < g.n; ++j) row[static_cast<size_t>(j)] += aip * b[j];
      }
    }
    for (int64_t j = 0; j < g.n; ++j) {
      float& c = g.c[i * g.ldc + j];
      // As BLAS: with beta = 0, C is not read (it may hold anything, NaN included).
      c = static_cast<float>(g.alpha * row[static_cast<size_t>(j)] +
                             (g.beta == 0.0f ? 0.0 : g.beta * c));
    }
  }
  return absl::OkStatus();
}

absl::Status HostOps::Run(const ElementOp& op, int64_t n) {
  std::visit(
      [n](const auto& f) {
        for (int64_t i = 0; i < n; ++i) f(i);
      },
      op);
  return absl::OkStatus();
}

absl::Status HostOps::ChannelSum(const ReduceTerm& term, const ReduceShape& shape, float alpha,
                                 float* out) {
  std::visit(
      [&](const auto& t) {
        for (int64_t c = 0; c < shape.channels; ++c) {
          double sum = 0;
          for (int64_t o = 0; o < shape.outer; ++o) {
            const int64_t base = (o * shape.channels + c) * shape.inner;
            for (int64_t s = 0; s < shape.inner; ++s) sum += t(base + s, c);
          }
          out[c] = static_cast<float>(alpha * sum);
        }
      },
      term);
  return absl::OkStatus();
}

absl::StatusOr<double> HostOps::SumOfSquares(const float* x, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  return sum;
}

absl::StatusOr<std::unique_ptr<Kernel>> HostOps::MakeConv2d(const Conv2dSpec&, const KernelArgs&) {
  return absl::UnimplementedError(
      "conv2d: the emulated device has no convolution (the CUDA backend's runs on cuDNN)");
}

}  // namespace cajal::device
