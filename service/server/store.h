// The job store: SQLite at DATA_DIR/cajal.db (WAL, busy_timeout, versioned schema).
//
// Holds each job as its serialized cajal.v1.Job (state, times, progress, latest metrics,
// spec) and each job's event history (state changes and metric points, by sequence number),
// and for crash-loop detection how many of the job's runs in a row did not end cleanly.
// Writes are transactions; a crash leaves either the old or the new row.
//
// Schema versions: 1 jobs and events; 2 adds jobs.interrupted_runs (existing rows: 0).
//
// Thread-safe: one connection guarded by a mutex. Calls block on disk I/O, so the server calls
// them from its store executor and job threads, never from gRPC reactions.
#ifndef CAJAL_SERVICE_SERVER_STORE_H_
#define CAJAL_SERVICE_SERVER_STORE_H_

#include <sqlite3.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cajal/v1/training_service.pb.h"

namespace cajal {

class Store {
 public:
  // Opens or creates the database and migrates it to the current schema version.
  // Errors: kFailedPrecondition for a database from a newer cajal; kInternal otherwise.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store();

  static constexpr int kSchemaVersion = 2;
  int schema_version() const { return version_; }

  // Inserts or replaces the job row; when `event` is non-null, appends it in the same
  // transaction.
  absl::Status PutJob(const v1::Job& job, const v1::JobEvent* event = nullptr);
  // Every job, oldest first.
  absl::StatusOr<std::vector<v1::Job>> LoadJobs();
  // The job's events with sequence >= from, in order.
  absl::StatusOr<std::vector<v1::JobEvent>> LoadEvents(const std::string& job_id, int64_t from);
  // Removes the job and its events. OK if absent.
  absl::Status DeleteJob(const std::string& job_id);

  // Crash loops: a run of a job counts as interrupted from its start until it ends cleanly.
  // StartRun adds one, durably, before the job trains; EndRun sets the count back to 0 (the
  // run ended, or the server is shutting down cleanly). What is left when the server starts
  // is how many times in a row it stopped uncleanly while running the job. kNotFound for an
  // unknown job.
  absl::Status StartRun(const std::string& job_id);
  absl::Status EndRun(const std::string& job_id);
  // The jobs whose count is not 0, with their counts.
  absl::StatusOr<std::map<std::string, int>> LoadInterruptedRuns();

 private:
  explicit Store(sqlite3* db) : db_(db) {}
  absl::Status Migrate();
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `body` in one write transaction: committed when it returns OK, else rolled back.
  absl::Status InTransaction(const std::function<absl::Status()>& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Error(const char* what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `sql` (one statement with ?1 = the job id) in a write transaction; kNotFound when it
  // changes no row.
  absl::Status UpdateJobRow(const char* sql, const std::string& job_id);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  int version_ = 0;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_STORE_H_
