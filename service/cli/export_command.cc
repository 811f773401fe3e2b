#include "service/cli/export_command.h"

#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/io/model_file.h"
#include "service/export/onnx_export.h"

namespace cajal {

int RunExport(const ExportOptions& o) {
  auto fail = [](int code, const absl::Status& s) {
    std::fprintf(stderr, "cajal: %s\n", std::string(s.message()).c_str());
    return code;
  };
  if (o.format != "onnx") {
    return fail(2, absl::InvalidArgumentError(
                       absl::StrCat("--format ", o.format, ": unknown format (known: onnx)")));
  }
  absl::StatusOr<ModelFile> model = ReadModelFile(o.model_path);
  if (!model.ok()) return fail(2, model.status());
  absl::StatusOr<std::string> bytes = ExportOnnx(*model);
  if (!bytes.ok()) return fail(2, bytes.status());
  if (absl::Status s = WriteFileAtomically(o.out_path, *bytes); !s.ok()) return fail(1, s);
  std::printf("wrote %s (ONNX opset %d, %zu bytes)\n", o.out_path.c_str(), kOnnxOpset,
              bytes->size());
  return 0;
}

}  // namespace cajal
