#include "service/cli/metrics_lines.h"

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace cajal {

std::string EpochLine(const EpochReport& e, bool classification) {
  std::string line = absl::StrFormat("epoch=%d loss=%.4f", e.epoch, e.loss);
  if (classification) absl::StrAppendFormat(&line, " accuracy=%.4f", e.accuracy);
  if (e.has_val) {
    absl::StrAppendFormat(&line, " val_loss=%.4f", e.val_loss);
    if (classification) absl::StrAppendFormat(&line, " val_accuracy=%.4f", e.val_accuracy);
  }
  return line;
}

std::string StepLine(const StepReport& s) {
  return absl::StrFormat("epoch=%d step=%d loss=%.4f", s.epoch, s.step, s.loss);
}

std::string LinePrefix(bool timestamps) {
  if (!timestamps) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ ", absl::Now(), absl::UTCTimeZone());
}

}  // namespace cajal
