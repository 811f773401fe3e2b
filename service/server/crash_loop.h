// Crash-loop detection. A job whose run takes the whole server down (the OOM killer, an abort
// in a library) would be resumed by every restart and take it down again, forever. So each
// run is counted in the store from its start until it ends cleanly (Store::StartRun/EndRun);
// a job that was RUNNING when the server stopped uncleanly `limit` times in a row is failed
// at the next start instead of being run again. A clean shutdown (SIGTERM) ends every counted
// run as it begins, so it never counts, even when its drain is cut short.
//
//   CrashLoopGuard guard(store, /*limit=*/2);
//   if (guard.Exceeded(count_at_load)) fail(guard.Message(count_at_load));
//   ASSIGN_OR_RETURN(bool go, guard.Begin(id));   // false: the server is stopping
//   ... train ...
//   guard.End(id);
//
// Thread-safe.
#ifndef CAJAL_SERVICE_SERVER_CRASH_LOOP_H_
#define CAJAL_SERVICE_SERVER_CRASH_LOOP_H_

#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "service/server/store.h"

namespace cajal {

class CrashLoopGuard {
 public:
  // `limit` 0: never fail a job for this.
  CrashLoopGuard(Store* store, int limit) : store_(store), limit_(limit) {}

  // Whether a job whose runs ended uncleanly `count` times in a row is failed.
  bool Exceeded(int count) const { return limit_ > 0 && count >= limit_; }
  // The job's error then: "the server stopped unexpectedly twice while running this job ...".
  static std::string Message(int count);

  // Counts the job's run, durably, before it trains. False (nothing counted) once a clean
  // shutdown has begun: the job must not start. Errors: the store's.
  absl::StatusOr<bool> Begin(const std::string& id);
  // The run ended (however): its count goes back to 0. Store errors are logged.
  void End(const std::string& id);
  // A clean shutdown begins: every counted run ends now, and no run begins after this.
  void StopCleanly();

 private:
  Store* const store_;
  const int limit_;
  absl::Mutex mu_;  // serializes Begin, End and StopCleanly with their store writes
  std::set<std::string> counted_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_CRASH_LOOP_H_
