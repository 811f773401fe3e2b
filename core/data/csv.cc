// CSV data: one example per row, comma-separated numbers, one of them the label.
//
// Two passes: a scan that counts rows and checks every row's column count (no cell is parsed),
// then, with the memory reserved exactly for what the scan found, a pass that parses the cells.
// Lines are read through a bounded reader, so neither a huge line nor a huge row count can
// make the loader allocate more than the limits in dataset.h.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/data/dataset.h"
#include "core/util/status_macros.h"

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

// Reads a file line by line; a line longer than kMaxCsvLineBytes is an error, not an
// allocation.
class LineReader {
 public:
  LineReader(std::string path, std::string name) : path_(std::move(path)), name_(std::move(name)) {}

  absl::Status Open() {
    f_.reset(std::fopen(path_.c_str(), "rb"));
    if (!f_)
      return absl::NotFoundError(absl::StrCat(name_, ": cannot open: ", std::strerror(errno)));
    return absl::OkStatus();
  }

  // The next line without its line ending, in `line`; false at the end of the file.
  absl::StatusOr<bool> Next(std::string* line) {
    line->clear();
    bool any = false;
    int c;
    while ((c = getc_unlocked(f_.get())) != EOF) {
      any = true;
      if (c == '\n') break;
      if (static_cast<int64_t>(line->size()) == kMaxCsvLineBytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            name_, ":", line_no_ + 1, ": line longer than ", kMaxCsvLineBytes, " bytes"));
      }
      line->push_back(static_cast<char>(c));
    }
    if (std::ferror(f_.get())) {
      return absl::InvalidArgumentError(absl::StrCat(name_, ": read error"));
    }
    if (!any) return false;
    ++line_no_;
    if (!line->empty() && line->back() == '\r') line->pop_back();
    return true;
  }

  int64_t line_no() const { return line_no_; }

 private:
  std::string path_;
  std::string name_;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f_{nullptr, &std::fclose};
  int64_t line_no_ = 0;
};

int64_t CountColumns(absl::string_view line) {
  return static_cast<int64_t>(std::count(line.begin(), line.end(), ',')) + 1;
}

// Whether a line holds a data row (header and blank lines do not).
bool IsDataRow(const std::string& line, int64_t line_no, const CsvOptions& o) {
  if (line_no == 1 && o.header) return false;
  return !absl::StripAsciiWhitespace(line).empty();
}

// What the scan finds: rows, columns, and where the label is.
struct CsvShape {
  int64_t rows = 0;
  int64_t columns = 0;
  int64_t label_column = 0;
};

absl::Status CheckFirstRow(const std::string& name, int64_t line_no, int64_t columns,
                           const CsvOptions& o, CsvShape* shape) {
  if (columns < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ":", line_no, ": needs at least 2 columns (features and a label), has ", columns));
  }
  if (columns > kMaxCsvColumns) {
    return absl::InvalidArgumentError(absl::StrCat(name, ":", line_no, ": has ", columns,
                                                   " columns, more than the limit of ",
                                                   kMaxCsvColumns));
  }
  shape->columns = columns;
  shape->label_column = o.label_column < 0 ? columns + o.label_column : o.label_column;
  if (shape->label_column < 0 || shape->label_column >= columns) {
    return absl::InvalidArgumentError(absl::StrCat(
        "label_column ", o.label_column, " is outside the ", columns, " columns of ", name));
  }
  return absl::OkStatus();
}

// Counts the data rows and checks each one's column count; parses no cell.
absl::StatusOr<CsvShape> Scan(const std::string& path, const std::string& name,
                              const CsvOptions& o) {
  LineReader in(path, name);
  RETURN_IF_ERROR(in.Open());
  CsvShape shape;
  std::string line;
  while (true) {
    ASSIGN_OR_RETURN(bool more, in.Next(&line));
    if (!more) break;
    if (!IsDataRow(line, in.line_no(), o)) continue;
    const int64_t n = CountColumns(line);
    if (shape.rows == 0) {
      RETURN_IF_ERROR(CheckFirstRow(name, in.line_no(), n, o, &shape));
    } else if (n != shape.columns) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ":", in.line_no(), ": has ", n, " columns, expected ", shape.columns));
    }
    if (++shape.rows > kMaxCsvRows) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": more than ", kMaxCsvRows, " data rows"));
    }
  }
  if (shape.rows == 0) return absl::InvalidArgumentError(absl::StrCat(name, ": has no data rows"));
  const int64_t bytes = shape.rows * shape.columns * static_cast<int64_t>(sizeof(float));
  if (bytes > kMaxDatasetBytes) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", shape.rows, " rows of ",
                                                   shape.columns, " columns take ", bytes,
                                                   " bytes as floats, more than the 16 GiB limit"));
  }
  return shape;
}

// Parses one data row into `ds`.
absl::Status ParseRow(const std::string& name, int64_t line_no, absl::string_view line,
                      const CsvShape& shape, const CsvOptions& o, Dataset* ds, float* max_label) {
  int64_t j = 0;
  for (size_t start = 0; j < shape.columns; ++j) {
    const size_t comma = std::min(line.find(',', start), line.size());
    const absl::string_view field = line.substr(start, comma - start);
    start = comma + 1;
    const std::string where = absl::StrCat(name, ":", line_no, ": column ", j + 1);
    float v;
    if (!ParseNumber(field, &v)) {
      if (o.redact_content) return absl::InvalidArgumentError(where + " is not a number");
      return absl::InvalidArgumentError(absl::StrCat(where, " is not a number: \"", field, "\""));
    }
    if (j != shape.label_column) {
      ds->f32.push_back(v);
    } else if (o.regression) {
      ds->targets.push_back(v);
    } else {
      if (v < 0 || v != std::floor(v) || v > 1e6f) {
        const std::string hint =
            " is not a class index (an integer >= 0); set csv.regression for real targets";
        if (o.redact_content) return absl::InvalidArgumentError(where + ": the label" + hint);
        return absl::InvalidArgumentError(
            absl::StrCat(name, ":", line_no, ": label \"", field, "\"", hint));
      }
      ds->labels.push_back(static_cast<int32_t>(v));
      *max_label = std::max(*max_label, v);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DatasetInfo> InspectCsv(const std::string& path, const CsvOptions& options) {
  const std::string name = options.name.empty() ? path : options.name;
  ASSIGN_OR_RETURN(CsvShape shape, Scan(path, name, options));
  DatasetInfo info;
  info.shape = {shape.columns - 1};
  info.count = shape.rows;
  info.target_dim = options.regression ? 1 : 0;
  info.bytes = shape.rows * shape.columns * static_cast<int64_t>(sizeof(float));
  return info;
}

absl::StatusOr<Dataset> LoadCsv(const std::string& path, const CsvOptions& options) {
  const std::string name = options.name.empty() ? path : options.name;
  ASSIGN_OR_RETURN(CsvShape shape, Scan(path, name, options));
  Dataset ds;
  ds.name = name;
  ds.f32.reserve(static_cast<size_t>(shape.rows * (shape.columns - 1)));
  if (options.regression) {
    ds.targets.reserve(static_cast<size_t>(shape.rows));
  } else {
    ds.labels.reserve(static_cast<size_t>(shape.rows));
  }
  LineReader in(path, name);
  RETURN_IF_ERROR(in.Open());
  std::string line;
  float max_label = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool more, in.Next(&line));
    if (!more) break;
    if (!IsDataRow(line, in.line_no(), options)) continue;
    // The file changed since the scan: refuse rather than grow past what was reserved.
    if (ds.count == shape.rows || CountColumns(line) != shape.columns) {
      return absl::AbortedError(absl::StrCat(name, ": changed while being read; retry"));
    }
    RETURN_IF_ERROR(ParseRow(name, in.line_no(), line, shape, options, &ds, &max_label));
    ++ds.count;
  }
  if (ds.count != shape.rows) {
    return absl::AbortedError(absl::StrCat(name, ": changed while being read; retry"));
  }
  ds.shape = {shape.columns - 1};
  if (options.regression) {
    ds.target_dim = 1;
  } else {
    ds.num_classes = static_cast<int>(max_label) + 1;
  }
  return ds;
}

}  // namespace cajal
