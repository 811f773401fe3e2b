// `cajal export`: a trained model file to a serving format (ONNX; service/export/).
#ifndef CAJAL_SERVICE_CLI_EXPORT_COMMAND_H_
#define CAJAL_SERVICE_CLI_EXPORT_COMMAND_H_

#include <string>

namespace cajal {

struct ExportOptions {
  std::string model_path;  // model.cajal
  std::string format = "onnx";
  std::string out_path;  // e.g. model.onnx
};

// Exit codes: 0 written; 2 bad input (unreadable or version 1 model file, unknown format, a
// layer that cannot be exported faithfully), message on stderr; 1 the output could not be
// written.
int RunExport(const ExportOptions& options);

}  // namespace cajal

#endif  // CAJAL_SERVICE_CLI_EXPORT_COMMAND_H_
