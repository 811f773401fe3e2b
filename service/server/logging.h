// cajald's log: one line per event on stderr, plain text (default) or one JSON object per line
// (--log_format=json) for log collectors.
//
//   SetLogFormat(LogFormat::kJson);
//   Log(LogLevel::kInfo, "job state changed", {{"job_id", id}, {"from", "queued"},
//                                              {"state", "running"}});
//   // {"time":"2024-05-01T12:00:00.123Z","level":"info","message":"job state changed",
//   //  "job_id":"…","from":"queued","state":"running"}
//   // text: cajald: job state changed job_id=… from=queued state=running
//
// Every job state change and every error is logged once, where it happens (job_manager.cc,
// the RPC interceptor, main.cc). Thread-safe: a line is written with one write(2).
#ifndef CAJAL_SERVICE_SERVER_LOGGING_H_
#define CAJAL_SERVICE_SERVER_LOGGING_H_

#include <initializer_list>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cajal {

enum class LogFormat { kText, kJson };
enum class LogLevel { kInfo, kWarning, kError };

// "text" or "json"; kInvalidArgument naming --log_format otherwise.
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);
// Process-wide; set once in main before anything logs.
void SetLogFormat(LogFormat format);

struct LogField {
  absl::string_view key;    // a fixed identifier: job_id, state, error, ...
  absl::string_view value;  // any bytes; escaped (JSON) or quoted when it has spaces (text)
};

// Writes one line to stderr.
void Log(LogLevel level, absl::string_view message, std::initializer_list<LogField> fields = {});

// The line Log writes (with its '\n'); for tests.
std::string FormatLogLine(LogFormat format, absl::Time time, LogLevel level,
                          absl::string_view message, std::initializer_list<LogField> fields);

// `text` as a JSON string literal, quotes included. Invalid UTF-8 becomes U+FFFD, so the
// line always parses.
std::string JsonQuote(absl::string_view text);

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_LOGGING_H_
