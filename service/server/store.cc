#include "service/server/store.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/status_macros.h"
#include "service/server/metrics.h"

namespace cajal {
namespace {

// Schema migrations: kMigrations[v] takes the schema from version v to v + 1.
constexpr const char* kMigrations[] = {
    // 0 → 1: jobs and their event history.
    "CREATE TABLE jobs ("
    "  id TEXT PRIMARY KEY,"
    "  request_id TEXT,"
    "  seq INTEGER NOT NULL,"
    "  job BLOB NOT NULL);"
    "CREATE UNIQUE INDEX jobs_request_id ON jobs(request_id) WHERE request_id IS NOT NULL;"
    "CREATE INDEX jobs_seq ON jobs(seq);"
    "CREATE TABLE events ("
    "  job_id TEXT NOT NULL,"
    "  sequence INTEGER NOT NULL,"
    "  event BLOB NOT NULL,"
    "  PRIMARY KEY (job_id, sequence)) WITHOUT ROWID;",
    // 1 → 2: crash-loop detection (Store::StartRun).
    "ALTER TABLE jobs ADD COLUMN interrupted_runs INTEGER NOT NULL DEFAULT 0;",
};

// Observes one write transaction's time in cajal_store_write_duration_seconds when it ends,
// committed or rolled back.
class WriteTimer {
 public:
  ~WriteTimer() { ServerMetrics().StoreWrite(absl::ToDoubleSeconds(absl::Now() - start_)); }

 private:
  absl::Time start_ = absl::Now();
};

// RAII for prepared statements.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

absl::Status Code(sqlite3* db, int rc, const char* what) {
  const std::string msg = absl::StrCat("store: ", what, ": ", sqlite3_errmsg(db), " (", rc, ")");
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(msg);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
      return absl::PermissionDeniedError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::AbortedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// Steps `st` to its end, parsing each row's first column as a T (`what` names the rows in
// errors: a row that does not parse is data loss, a failed step keeps SQLite's code).
template <typename T>
absl::StatusOr<std::vector<T>> ReadRows(sqlite3* db, sqlite3_stmt* st, const char* what) {
  std::vector<T> rows;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    T row;
    if (!row.ParseFromArray(sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0))) {
      return absl::DataLossError(absl::StrCat("store: a row of ", what, " does not parse"));
    }
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return Code(db, rc, absl::StrCat("scan ", what).c_str());
  return rows;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = Code(db, rc, absl::StrCat("cannot open ", path).c_str());
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<Store> store(new Store(db));
  {
    absl::MutexLock lock(&store->mu_);
    sqlite3_busy_timeout(db, 5000);
    RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL;"));
    // FULL: a transaction that returned is durable even across power loss, which is what
    // "SubmitJob returned" promises.
    RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=FULL;"));
    RETURN_IF_ERROR(store->Exec("PRAGMA foreign_keys=ON;"));
  }
  RETURN_IF_ERROR(store->Migrate());
  return store;
}

Store::~Store() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status Store::Exec(const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) return Code(db_, rc, "exec");
  return absl::OkStatus();
}

absl::Status Store::InTransaction(const std::function<absl::Status()>& body) {
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE;"));
  if (absl::Status s = body(); !s.ok()) {
    (void)Exec("ROLLBACK;");
    return s;
  }
  return Exec("COMMIT;");
}

absl::Status Store::Error(const char* what) { return Code(db_, sqlite3_errcode(db_), what); }

absl::Status Store::Migrate() {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"));
  int version = 0;
  {
    Stmt st;
    if (sqlite3_prepare_v2(db_, "SELECT version FROM schema_version", -1, &st.s, nullptr) !=
        SQLITE_OK) {
      return Error("read schema version");
    }
    if (sqlite3_step(st.s) == SQLITE_ROW) version = sqlite3_column_int(st.s, 0);
  }
  constexpr int kLatest = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));
  static_assert(kLatest == kSchemaVersion);
  if (version > kLatest) {
    return absl::FailedPreconditionError(absl::StrCat(
        "store: the database has schema version ", version, ", newer than this cajald's ", kLatest,
        "; run a newer cajald or use another --data_dir"));
  }
  for (int v = version; v < kLatest; ++v) {
    RETURN_IF_ERROR(InTransaction([&]() -> absl::Status {
      RETURN_IF_ERROR(Exec(kMigrations[v]));
      RETURN_IF_ERROR(Exec("DELETE FROM schema_version;"));
      const std::string set = absl::StrCat("INSERT INTO schema_version VALUES (", v + 1, ");");
      return Exec(set.c_str());
    }));
  }
  version_ = kLatest;
  return absl::OkStatus();
}

absl::Status Store::PutJob(const v1::Job& job, const v1::JobEvent* event) {
  std::string job_bytes;
  job.SerializeToString(&job_bytes);
  std::string event_bytes;
  if (event != nullptr) event->SerializeToString(&event_bytes);
  absl::MutexLock lock(&mu_);
  WriteTimer timer;
  auto body = [&]() -> absl::Status {
    Stmt st;
    // seq keeps the first insertion's order across replacements.
    if (sqlite3_prepare_v2(db_,
                           "INSERT INTO jobs (id, request_id, seq, job) VALUES (?1, ?2, "
                           "(SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), ?3) "
                           "ON CONFLICT(id) DO UPDATE SET job = excluded.job",
                           -1, &st.s, nullptr) != SQLITE_OK) {
      return Error("prepare job upsert");
    }
    sqlite3_bind_text(st.s, 1, job.id().data(), static_cast<int>(job.id().size()),
                      SQLITE_TRANSIENT);
    if (job.request_id().empty()) {
      sqlite3_bind_null(st.s, 2);
    } else {
      sqlite3_bind_text(st.s, 2, job.request_id().data(), static_cast<int>(job.request_id().size()),
                        SQLITE_TRANSIENT);
    }
    sqlite3_bind_blob(st.s, 3, job_bytes.data(), static_cast<int>(job_bytes.size()),
                      SQLITE_TRANSIENT);
    if (sqlite3_step(st.s) != SQLITE_DONE) return Error("write job");
    if (event == nullptr) return absl::OkStatus();
    Stmt ev;
    if (sqlite3_prepare_v2(db_, "INSERT INTO events (job_id, sequence, event) VALUES (?1, ?2, ?3)",
                           -1, &ev.s, nullptr) != SQLITE_OK) {
      return Error("prepare event insert");
    }
    sqlite3_bind_text(ev.s, 1, job.id().data(), static_cast<int>(job.id().size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_int64(ev.s, 2, event->sequence());
    sqlite3_bind_blob(ev.s, 3, event_bytes.data(), static_cast<int>(event_bytes.size()),
                      SQLITE_TRANSIENT);
    if (sqlite3_step(ev.s) != SQLITE_DONE) return Error("write event");
    return absl::OkStatus();
  };
  return InTransaction(body);
}

absl::StatusOr<std::vector<v1::Job>> Store::LoadJobs() {
  absl::MutexLock lock(&mu_);
  Stmt st;
  if (sqlite3_prepare_v2(db_, "SELECT job FROM jobs ORDER BY seq", -1, &st.s, nullptr) !=
      SQLITE_OK) {
    return Error("prepare job scan");
  }
  return ReadRows<v1::Job>(db_, st.s, "jobs");
}

absl::StatusOr<std::vector<v1::JobEvent>> Store::LoadEvents(const std::string& job_id,
                                                            int64_t from) {
  absl::MutexLock lock(&mu_);
  Stmt st;
  if (sqlite3_prepare_v2(
          db_, "SELECT event FROM events WHERE job_id = ?1 AND sequence >= ?2 ORDER BY sequence",
          -1, &st.s, nullptr) != SQLITE_OK) {
    return Error("prepare event scan");
  }
  sqlite3_bind_text(st.s, 1, job_id.data(), static_cast<int>(job_id.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(st.s, 2, from);
  return ReadRows<v1::JobEvent>(db_, st.s, "events");
}

absl::Status Store::DeleteJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  WriteTimer timer;
  auto body = [&]() -> absl::Status {
    for (const char* sql :
         {"DELETE FROM events WHERE job_id = ?1", "DELETE FROM jobs WHERE id = ?1"}) {
      Stmt st;
      if (sqlite3_prepare_v2(db_, sql, -1, &st.s, nullptr) != SQLITE_OK)
        return Error("prepare delete");
      sqlite3_bind_text(st.s, 1, job_id.data(), static_cast<int>(job_id.size()), SQLITE_TRANSIENT);
      if (sqlite3_step(st.s) != SQLITE_DONE) return Error("delete job");
    }
    return absl::OkStatus();
  };
  return InTransaction(body);
}

absl::Status Store::UpdateJobRow(const char* sql, const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  WriteTimer timer;
  auto body = [&]() -> absl::Status {
    Stmt st;
    if (sqlite3_prepare_v2(db_, sql, -1, &st.s, nullptr) != SQLITE_OK) {
      return Error("prepare run count update");
    }
    sqlite3_bind_text(st.s, 1, job_id.data(), static_cast<int>(job_id.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(st.s) != SQLITE_DONE) return Error("update run count");
    if (sqlite3_changes(db_) == 0) {
      return absl::NotFoundError(absl::StrCat("store: job ", job_id, " not found"));
    }
    return absl::OkStatus();
  };
  return InTransaction(body);
}

absl::Status Store::StartRun(const std::string& job_id) {
  return UpdateJobRow("UPDATE jobs SET interrupted_runs = interrupted_runs + 1 WHERE id = ?1",
                      job_id);
}

absl::Status Store::EndRun(const std::string& job_id) {
  return UpdateJobRow("UPDATE jobs SET interrupted_runs = 0 WHERE id = ?1", job_id);
}

absl::StatusOr<std::map<std::string, int>> Store::LoadInterruptedRuns() {
  absl::MutexLock lock(&mu_);
  Stmt st;
  if (sqlite3_prepare_v2(db_, "SELECT id, interrupted_runs FROM jobs WHERE interrupted_runs > 0",
                         -1, &st.s, nullptr) != SQLITE_OK) {
    return Error("prepare run count scan");
  }
  std::map<std::string, int> counts;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    const auto* id = reinterpret_cast<const char*>(sqlite3_column_text(st.s, 0));
    counts[id != nullptr ? id : ""] = sqlite3_column_int(st.s, 1);
  }
  if (rc != SQLITE_DONE) return Code(db_, rc, "scan run counts");
  return counts;
}

}  // namespace cajal
