// The job store on a real SQLite file: jobs and events round-trip in order, a replaced job
// keeps its place, deletion removes a job with its events, and the database refuses what it
// cannot read — a newer schema, a row that does not parse — with an error that names it and
// without changing the file.
#include "service/server/store.h"

#include <sqlite3.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = ::testing::TempDir() + "/cajal_store_XXXXXX";
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    path_ = dir + "/cajal.db";
  }

  std::unique_ptr<Store> OpenOk() {
    absl::StatusOr<std::unique_ptr<Store>> s = Store::Open(path_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  // Runs SQL on the file behind the store's back.
  void Sql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }

  // The single integer a query on the file returns.
  int64_t Count(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  }

  static v1::Job Job(const std::string& id, v1::JobState state) {
    v1::Job j;
    j.set_id(id);
    j.set_state(state);
    return j;
  }

  static v1::JobEvent Event(int64_t sequence, v1::JobState state) {
    v1::JobEvent e;
    e.set_sequence(sequence);
    e.set_state(state);
    return e;
  }

  std::string path_;
};

TEST_F(StoreTest, JobsAndEventsRoundTripInOrder) {
  {
    std::unique_ptr<Store> store = OpenOk();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->schema_version(), Store::kSchemaVersion);
    const v1::JobEvent queued = Event(0, v1::JOB_STATE_QUEUED);
    ASSERT_TRUE(store->PutJob(Job("a", v1::JOB_STATE_QUEUED), &queued).ok());
    ASSERT_TRUE(store->PutJob(Job("b", v1::JOB_STATE_QUEUED), &queued).ok());
    // Replacing "a" keeps it first.
    const v1::JobEvent running = Event(1, v1::JOB_STATE_RUNNING);
    ASSERT_TRUE(store->PutJob(Job("a", v1::JOB_STATE_RUNNING), &running).ok());
  }
  // Reopened: what was written is there.
  std::unique_ptr<Store> store = OpenOk();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].id(), "a");
  EXPECT_EQ((*jobs)[0].state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ((*jobs)[1].id(), "b");
  absl::StatusOr<std::vector<v1::JobEvent>> events = store->LoadEvents("a", 0);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ((*events)[1].state(), v1::JOB_STATE_RUNNING);
  events = store->LoadEvents("a", 1);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].sequence(), 1);

  ASSERT_TRUE(store->DeleteJob("a").ok());
  ASSERT_TRUE(store->DeleteJob("absent").ok());
  jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].id(), "b");
  events = store->LoadEvents("a", 0);
  ASSERT_TRUE(events.ok());
  EXPECT_TRUE(events->empty());
}

TEST_F(StoreTest, NewerSchemaIsRefusedAndLeftAlone) {
  ASSERT_NE(OpenOk(), nullptr);
  Sql("UPDATE schema_version SET version = 99");
  absl::StatusOr<std::unique_ptr<Store>> s = Store::Open(path_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("schema version 99"));
  Sql(absl::StrCat("UPDATE schema_version SET version = ", Store::kSchemaVersion));  // untouched
  EXPECT_NE(OpenOk(), nullptr);
}

TEST_F(StoreTest, RowsThatDoNotParseAreDataLossAndNothingIsRemoved) {
  {
    std::unique_ptr<Store> store = OpenOk();
    ASSERT_NE(store, nullptr);
    const v1::JobEvent queued = Event(0, v1::JOB_STATE_QUEUED);
    ASSERT_TRUE(store->PutJob(Job("good", v1::JOB_STATE_QUEUED), &queued).ok());
  }
  // A blob that is no protobuf message: field 1 as a length-delimited run past the end.
  Sql("INSERT INTO jobs (id, seq, job) VALUES ('bad', 99, x'0aff01')");
  Sql("INSERT INTO events (job_id, sequence, event) VALUES ('good', 1, x'0aff01')");
  std::unique_ptr<Store> store = OpenOk();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_FALSE(jobs.ok());
  EXPECT_EQ(jobs.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(jobs.status().message(), HasSubstr("a row of jobs does not parse"));
  absl::StatusOr<std::vector<v1::JobEvent>> events = store->LoadEvents("good", 0);
  ASSERT_FALSE(events.ok());
  EXPECT_EQ(events.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(events.status().message(), HasSubstr("a row of events does not parse"));
  // Reading failed; nothing was removed.
  EXPECT_EQ(Count("SELECT COUNT(*) FROM jobs"), 2);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM events"), 2);
  Sql("DELETE FROM jobs WHERE id = 'bad'");
  Sql("DELETE FROM events WHERE sequence = 1");
  jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].id(), "good");
}

// Crash-loop counts: StartRun adds one per run, EndRun sets it back to 0, both survive a
// reopen, and replacing the job's row keeps the count.
TEST_F(StoreTest, InterruptedRunsAreCountedAndSurviveReopening) {
  {
    std::unique_ptr<Store> store = OpenOk();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->PutJob(Job("a", v1::JOB_STATE_QUEUED)).ok());
    ASSERT_TRUE(store->PutJob(Job("b", v1::JOB_STATE_QUEUED)).ok());
    ASSERT_TRUE(store->StartRun("a").ok());
    ASSERT_TRUE(store->StartRun("b").ok());
    ASSERT_TRUE(store->EndRun("b").ok());
    ASSERT_TRUE(store->StartRun("a").ok());
    ASSERT_TRUE(store->PutJob(Job("a", v1::JOB_STATE_RUNNING)).ok());
    absl::Status s = store->StartRun("absent");
    EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(s.message(), HasSubstr("absent"));
  }
  std::unique_ptr<Store> store = OpenOk();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::map<std::string, int>> runs = store->LoadInterruptedRuns();
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_EQ(*runs, (std::map<std::string, int>{{"a", 2}}));
  ASSERT_TRUE(store->EndRun("a").ok());
  runs = store->LoadInterruptedRuns();
  ASSERT_TRUE(runs.ok());
  EXPECT_TRUE(runs->empty());
}

// A database of schema version 1 (before crash-loop counts) is migrated in place: its jobs
// and events are kept and their counts start at 0.
TEST_F(StoreTest, VersionOneDatabaseIsMigrated) {
  v1::Job job = Job("old", v1::JOB_STATE_RUNNING);
  std::string bytes;
  job.SerializeToString(&bytes);
  std::string hex;
  for (unsigned char c : bytes) absl::StrAppend(&hex, absl::Hex(c, absl::kZeroPad2));
  Sql("CREATE TABLE schema_version (version INTEGER NOT NULL);"
      "INSERT INTO schema_version VALUES (1);"
      "CREATE TABLE jobs (id TEXT PRIMARY KEY, request_id TEXT, seq INTEGER NOT NULL,"
      "  job BLOB NOT NULL);"
      "CREATE UNIQUE INDEX jobs_request_id ON jobs(request_id) WHERE request_id IS NOT NULL;"
      "CREATE INDEX jobs_seq ON jobs(seq);"
      "CREATE TABLE events (job_id TEXT NOT NULL, sequence INTEGER NOT NULL,"
      "  event BLOB NOT NULL, PRIMARY KEY (job_id, sequence)) WITHOUT ROWID;" +
      absl::StrCat("INSERT INTO jobs (id, seq, job) VALUES ('old', 1, x'", hex, "');"));
  std::unique_ptr<Store> store = OpenOk();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), 2);
  EXPECT_EQ(Count("SELECT version FROM schema_version"), 2);
  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].id(), "old");
  EXPECT_EQ((*jobs)[0].state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(Count("SELECT interrupted_runs FROM jobs WHERE id = 'old'"), 0);
  ASSERT_TRUE(store->StartRun("old").ok());
  EXPECT_EQ(Count("SELECT interrupted_runs FROM jobs WHERE id = 'old'"), 1);
}

}  // namespace
}  // namespace cajal
