// Reading a job spec: YAML or JSON text → (overrides applied) → JSON normalized along the
// JobSpec descriptor → protobuf's JSON parser → JobSpec. The proto is the only schema.
//
//   ASSIGN_OR_RETURN(cajal::v1::JobSpec spec,
//                    LoadSpecFile("job.yaml", {"model.layers.0.dense.units=512"}));
//
// Normalization makes the YAML friendlier than raw protobuf JSON, without a second schema:
// enum values may be written `relu` as well as `ACTIVATION_KIND_RELU`; unknown fields, a
// layer that sets two kinds, and values of the wrong type are errors naming the field path
// (`model.layers.0.dense.unit: unknown field (known: units, use_bias)`).
// All errors are kInvalidArgument, except an unreadable file (kNotFound).
#ifndef CAJAL_SERVICE_SPEC_SPEC_LOADER_H_
#define CAJAL_SERVICE_SPEC_SPEC_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cajal/v1/job_spec.pb.h"

namespace cajal {

// Largest spec text accepted, in bytes.
inline constexpr size_t kMaxSpecBytes = 1 << 20;

// `overrides` are "path=value" strings; the path is the field path with list elements by
// index (`model.layers.2.dense.units`), the value a YAML scalar or flow collection.
absl::StatusOr<v1::JobSpec> ParseSpec(const std::string& text,
                                      const std::vector<std::string>& overrides = {});
absl::StatusOr<v1::JobSpec> LoadSpecFile(const std::string& path,
                                         const std::vector<std::string>& overrides = {});

// The spec as canonical protobuf JSON (what model files and the store keep).
std::string SpecToJson(const v1::JobSpec& spec);

}  // namespace cajal

#endif  // CAJAL_SERVICE_SPEC_SPEC_LOADER_H_
