// The metrics lines cajal prints: Katib's `name=value` format, one line per epoch.
//
//   epoch=3 loss=0.3121 accuracy=0.8874 val_loss=0.3502 val_accuracy=0.8731
#ifndef CAJAL_SERVICE_CLI_METRICS_LINES_H_
#define CAJAL_SERVICE_CLI_METRICS_LINES_H_

#include <string>

#include "core/train/job.h"

namespace cajal {

std::string EpochLine(const EpochReport& e, bool classification);
std::string StepLine(const StepReport& s);
// "2026-11-26T22:16:50.123Z " when `timestamps`, else "".
std::string LinePrefix(bool timestamps);

}  // namespace cajal

#endif  // CAJAL_SERVICE_CLI_METRICS_LINES_H_
