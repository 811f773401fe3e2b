#include "service/server/crash_loop.h"

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "service/server/logging.h"

namespace cajal {

std::string CrashLoopGuard::Message(int count) {
  return absl::StrCat("the server stopped unexpectedly ",
                      count == 2 ? std::string("twice") : absl::StrCat(count, " times in a row"),
                      " while running this job, so it is not run again; find what stopped it "
                      "(the server's log, an out-of-memory kill) and resubmit the job");
}

absl::StatusOr<bool> CrashLoopGuard::Begin(const std::string& id) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  RETURN_IF_ERROR(store_->StartRun(id));
  counted_.insert(id);
  return true;
}

void CrashLoopGuard::End(const std::string& id) {
  absl::MutexLock lock(&mu_);
  if (counted_.erase(id) == 0) return;
  if (absl::Status s = store_->EndRun(id); !s.ok() && !absl::IsNotFound(s)) {
    Log(LogLevel::kError, "cannot record the end of a run",
        {{"job_id", id}, {"error", s.message()}});
  }
}

void CrashLoopGuard::StopCleanly() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  for (const std::string& id : counted_) {
    if (absl::Status s = store_->EndRun(id); !s.ok() && !absl::IsNotFound(s)) {
      Log(LogLevel::kError, "cannot record a clean stop", {{"job_id", id}, {"error", s.message()}});
    }
  }
  counted_.clear();
}

}  // namespace cajal
