// CSV data: one example per row, comma-separated numbers, one of them the label.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/data/dataset.h"

namespace cajal {
namespace {

bool ParseNumber(absl::string_view text, float* out) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) return false;
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  const float v = std::strtof(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

}  // namespace

absl::StatusOr<Dataset> LoadCsv(const std::string& path, const CsvOptions& options) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  Dataset ds;
  ds.name = path;
  std::string line;
  int64_t line_no = 0;
  int64_t columns = -1;
  int64_t label_col = 0;
  float max_label = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && options.header) continue;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    const int64_t n = static_cast<int64_t>(fields.size());
    if (columns < 0) {
      columns = n;
      if (columns < 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ":", line_no, ": needs at least 2 columns (features and a label), has ", n));
      }
      label_col = options.label_column < 0 ? columns + options.label_column : options.label_column;
      if (label_col < 0 || label_col >= columns) {
        return absl::InvalidArgumentError(absl::StrCat("label_column ", options.label_column,
                                                       " is outside the ", columns, " columns of ",
                                                       path));
      }
    } else if (n != columns) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": has ", n, " columns, expected ", columns));
    }
    for (int64_t j = 0; j < n; ++j) {
      float v;
      if (!ParseNumber(fields[j], &v)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": column ", j + 1,
                                                       " is not a number: \"", fields[j], "\""));
      }
      if (j != label_col) {
        ds.f32.push_back(v);
        continue;
      }
      if (options.regression) {
        ds.targets.push_back(v);
      } else {
        if (v < 0 || v != std::floor(v) || v > 1e6f) {
          return absl::InvalidArgumentError(absl::StrCat(
              path, ":", line_no, ": label \"", fields[j],
              "\" is not a class index (an integer >= 0); set csv.regression for real targets"));
        }
        ds.labels.push_back(static_cast<int32_t>(v));
        max_label = std::max(max_label, v);
      }
    }
    ++ds.count;
  }
  if (ds.count == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": has no data rows"));
  ds.shape = {columns - 1};
  if (options.regression) {
    ds.target_dim = 1;
  } else {
    ds.num_classes = static_cast<int>(max_label) + 1;
  }
  return ds;
}

}  // namespace cajal
