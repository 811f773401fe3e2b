#include "core/data/dataset.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cajal {
namespace {

// Channels of the per-channel statistics: dimension 0 of an image, every feature otherwise.
int64_t ChannelCount(const Shape& shape, int64_t* stride) {
  if (shape.size() == 3) {
    *stride = shape[1] * shape[2];
    return shape[0];
  }
  *stride = 1;
  return shape.back();
}

}  // namespace

Normalization FitNormalization(NormalizeKind kind, const Dataset& data,
                               const std::vector<int64_t>& indices) {
  Normalization norm;
  const int64_t channels = ChannelCount(data.shape, &norm.channel_stride);
  norm.shift.assign(channels, 0.0f);
  norm.scale.assign(channels, 1.0f);
  const int64_t size = data.example_size();
  auto value = [&](int64_t example, int64_t j) -> double {
    const int64_t k = example * size + j;
    return data.u8.empty() ? data.f32[k] : data.u8[k];
  };
  // Feature j belongs to channel (j / stride) % channels: images group H·W features per channel;
  // sequences (T, F) cycle through the F features every step.
  auto channel_of = [&](int64_t j) { return (j / norm.channel_stride) % channels; };
  if (kind == NormalizeKind::kScale) {
    if (!data.u8.empty()) {
      norm.scale.assign(channels, 1.0f / 255.0f);
      return norm;
    }
    double max_abs = 0;
    for (int64_t e : indices) {
      for (int64_t j = 0; j < size; ++j) max_abs = std::max(max_abs, std::abs(value(e, j)));
    }
    norm.scale.assign(channels, max_abs > 0 ? static_cast<float>(1.0 / max_abs) : 1.0f);
  } else if (kind == NormalizeKind::kStandardize) {
    std::vector<double> sum(channels, 0.0), sq(channels, 0.0), cnt(channels, 0.0);
    for (int64_t e : indices) {
      for (int64_t j = 0; j < size; ++j) {
        const double v = value(e, j);
        const int64_t c = channel_of(j);
        sum[c] += v;
        sq[c] += v * v;
        cnt[c] += 1;
      }
    }
    for (int64_t c = 0; c < channels; ++c) {
      if (cnt[c] == 0) continue;
      const double mean = sum[c] / cnt[c];
      const double var = std::max(sq[c] / cnt[c] - mean * mean, 0.0);
      norm.shift[c] = static_cast<float>(mean);
      // A constant channel keeps unit scale rather than dividing by zero.
      norm.scale[c] = var > 1e-12 ? static_cast<float>(1.0 / std::sqrt(var)) : 1.0f;
    }
  }
  return norm;
}

void GatherBatch(const Dataset& data, const Normalization& norm, const int64_t* indices, int64_t n,
                 float* x, int32_t* labels, float* targets) {
  const int64_t size = data.example_size();
  const int64_t channels = static_cast<int64_t>(norm.scale.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t e = indices[i];
    float* out = x + i * size;
    for (int64_t j0 = 0, c = 0; j0 < size; j0 += norm.channel_stride, c = (c + 1) % channels) {
      const float shift = norm.shift[c], scale = norm.scale[c];
      const int64_t end = std::min(size, j0 + norm.channel_stride);
      if (!data.u8.empty()) {
        const uint8_t* in = data.u8.data() + e * size;
        for (int64_t j = j0; j < end; ++j) out[j] = (static_cast<float>(in[j]) - shift) * scale;
      } else {
        const float* in = data.f32.data() + e * size;
        for (int64_t j = j0; j < end; ++j) out[j] = (in[j] - shift) * scale;
      }
    }
    if (labels != nullptr && data.classification()) labels[i] = data.labels[e];
    if (targets != nullptr && !data.classification()) {
      std::copy_n(data.targets.data() + e * data.target_dim, data.target_dim,
                  targets + i * data.target_dim);
    }
  }
}

absl::Status Reshape(const Shape& shape, Dataset* data) {
  if (shape.empty() || shape.size() > 3 ||
      std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d <= 0; })) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape must have 1 to 3 positive dimensions, got ", ShapeToString(shape)));
  }
  if (NumElements(shape) != data->example_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape ", ShapeToString(shape), " has ", NumElements(shape), " elements but ",
                     data->name, " has ", data->example_size(), " features per example"));
  }
  data->shape = shape;
  return absl::OkStatus();
}

}  // namespace cajal
