// The store of uploaded data sets, under DATA_DIR/datasets/:
//
//   datasets/ID/data            the file, exactly as uploaded
//   datasets/ID/dataset.json    its cajal.v1.Dataset (name, size, sha256, create time)
//   datasets/.incoming/ID/      an upload in progress; moved to datasets/ID in one rename
//
//   ASSIGN_OR_RETURN(auto store, DatasetStore::Open(data_dir + "/datasets", limits));
//   ASSIGN_OR_RETURN(auto upload, store->Begin(header));   // reserves header.size_bytes
//   RETURN_IF_ERROR(upload->Append(chunk));                // ... for every chunk
//   ASSIGN_OR_RETURN(v1::Dataset ds, upload->Commit());    // digest checked, fsync, rename
//
// A data set becomes visible only when its directory is renamed into place, after both files
// and the directory were fsynced, so a crash at any point leaves either no data set or a whole
// one. An upload destroyed before Commit removes what it wrote; whatever a killed process left
// in .incoming/ is removed when the store is opened again.
//
// Limits (cajald flags): a data set is at most max_dataset_bytes (--max_dataset_bytes); all of
// them together, counting the sizes uploads in progress declared, at most max_total_bytes
// (--max_datasets_bytes). Both are checked when an upload begins, before any byte arrives.
//
// Every call may block on disk: the server runs them on an executor, never in a reaction.
// Thread-safe.
#ifndef CAJAL_SERVICE_SERVER_DATASETS_H_
#define CAJAL_SERVICE_SERVER_DATASETS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "cajal/v1/dataset.pb.h"
#include "service/server/data_roots.h"
#include "service/util/sha256.h"

namespace cajal {

struct DatasetLimits {
  int64_t max_dataset_bytes = int64_t{1} << 30;  // 1 GiB
  int64_t max_total_bytes = int64_t{10} << 30;   // 10 GiB
};

// Largest chunk an UploadDataset message may carry.
inline constexpr int64_t kMaxUploadChunkBytes = int64_t{1} << 20;

class DatasetStore {
 public:
  // Creates `dir` and dir/.incoming if needed, removes leftovers of interrupted uploads and
  // indexes the stored data sets (a directory that is not a whole data set is skipped).
  static absl::StatusOr<std::unique_ptr<DatasetStore>> Open(const std::string& dir,
                                                            const DatasetLimits& limits);
  ~DatasetStore();

  // One upload in progress. Destroying it without a successful Commit removes its files and
  // releases its reservation. Not thread-safe (one stream feeds it).
  class Upload {
   public:
    ~Upload();
    // Writes the next bytes. kInvalidArgument past the declared size or for a chunk larger
    // than kMaxUploadChunkBytes; kResourceExhausted when the disk is full.
    absl::Status Append(absl::string_view bytes);
    // Checks that every declared byte arrived (kInvalidArgument naming how many did) and that
    // their SHA-256 is the declared one (kDataLoss), then makes the data set visible.
    absl::StatusOr<v1::Dataset> Commit();
    int64_t received() const { return received_; }

   private:
    friend class DatasetStore;
    Upload(DatasetStore* store, v1::Dataset dataset, std::string expected_sha256, int fd);
    absl::Status Fail(absl::Status status);

    DatasetStore* store_;
    v1::Dataset dataset_;  // id, name, size_bytes as declared
    std::string expected_sha256_;
    int fd_;
    int64_t received_ = 0;
    Sha256 digest_;
    bool done_ = false;  // committed, or failed and cleaned up
  };

  // Validates the header (kInvalidArgument naming the field), checks the limits
  // (kResourceExhausted naming the flag) and reserves the declared size.
  absl::StatusOr<std::unique_ptr<Upload>> Begin(const v1::UploadDatasetHeader& header);
  // Oldest first; page_size 0 means 100, at most 1000.
  absl::StatusOr<v1::ListDatasetsResponse> List(const v1::ListDatasetsRequest& request) const;
  // kInvalidArgument for a malformed id, kNotFound for an unknown one.
  absl::StatusOr<v1::Dataset> Get(const std::string& id) const;
  absl::Status Delete(const std::string& id);
  // Opens the data set's file for a job, for the spec field `field`: kInvalidArgument for a
  // malformed id, kNotFound (naming the field) for an unknown or deleted one.
  absl::StatusOr<OpenFile> OpenData(const std::string& field, const std::string& id) const;

  const std::string& dir() const { return dir_; }
  // Bytes of the stored data sets, and bytes reserved by uploads in progress.
  int64_t used_bytes() const;
  int64_t reserved_bytes() const;

 private:
  DatasetStore(std::string dir, DatasetLimits limits, int dir_fd);
  absl::Status Load();
  // Makes an upload's files durable and moves them into place; then indexes the data set.
  absl::Status Publish(const v1::Dataset& dataset);
  void Release(int64_t bytes);
  std::string IncomingDir(const std::string& id) const;

  const std::string dir_;
  const DatasetLimits limits_;
  const int dir_fd_;  // dir_, O_PATH: where data sets are opened from

  mutable absl::Mutex mu_;
  // By (create time in ns, id): the listing order.
  std::map<std::pair<int64_t, std::string>, v1::Dataset> by_time_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::pair<int64_t, std::string>> by_id_ ABSL_GUARDED_BY(mu_);
  int64_t used_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_DATASETS_H_
