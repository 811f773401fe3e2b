// RETURN_IF_ERROR and ASSIGN_OR_RETURN: the two status macros Abseil 20220623 lacks.
//
//   absl::Status Load(const std::string& path) {
//     RETURN_IF_ERROR(CheckExists(path));
//     ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
//     ...
//   }
//
// Both evaluate their argument exactly once and return the error status unchanged.
#ifndef CAJAL_CORE_UTIL_STATUS_MACROS_H_
#define CAJAL_CORE_UTIL_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CAJAL_STATUS_CONCAT_INNER_(a, b) a##b
#define CAJAL_STATUS_CONCAT_(a, b) CAJAL_STATUS_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the current function when it is not OK.
#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status cajal_status_ = (expr);         \
    if (!cajal_status_.ok()) return cajal_status_; \
  } while (false)

// `lhs` is a declaration or an assignable expression; `rexpr` yields an absl::StatusOr<T>.
// On error, returns its status; otherwise moves the value into `lhs`.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  CAJAL_ASSIGN_OR_RETURN_IMPL_(CAJAL_STATUS_CONCAT_(cajal_statusor_, __LINE__), lhs, rexpr)

#define CAJAL_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // CAJAL_CORE_UTIL_STATUS_MACROS_H_
