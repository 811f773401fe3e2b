// The files a job reads on the server: paths confined to the data roots (data_roots.h) and
// uploaded data sets named by id (datasets.h). The one place the job manager asks about data.
//
//   JobData data(roots, datasets);
//   RETURN_IF_ERROR(data.Check(spec));                          // SubmitJob, before storing
//   ASSIGN_OR_RETURN(JobFiles files, data.Open(spec, &config));  // when the job starts
//   TrainingJob::Prepare(config, backend);                      // reads what `files` holds open
//
// Open points the config's data sources at the files it opened (/proc/self/fd/N), so a path
// swapped for a symbolic link after SubmitJob, or a data set deleted meanwhile, cannot change
// what the job reads; and it sets the loaders' content-free errors: a job's error names the
// file, line and column, never the file's text. Builtin data sets are the server's own and
// pass through unchanged.
//
// Errors name the spec field: kPermissionDenied outside the roots (naming them), kNotFound for
// a missing file or unknown data set, kInvalidArgument for a malformed id or a non-regular
// file. Thread-safe.
#ifndef CAJAL_SERVICE_SERVER_JOB_DATA_H_
#define CAJAL_SERVICE_SERVER_JOB_DATA_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cajal/v1/job_spec.pb.h"
#include "core/train/job.h"
#include "service/server/data_roots.h"
#include "service/server/datasets.h"

namespace cajal {

// Open data files; keep them until the job's data is loaded.
using JobFiles = std::vector<OpenFile>;

class JobData {
 public:
  // Both must outlive this object.
  JobData(const DataRoots* roots, const DatasetStore* datasets)
      : roots_(roots), datasets_(datasets) {}

  // Every file the spec names opens (and is a regular file) under the current roots and data
  // sets.
  absl::Status Check(const v1::JobSpec& spec) const;
  // Opens them again and rewrites `config`'s data sources (from ToJobConfig(spec)) to read them.
  absl::StatusOr<JobFiles> Open(const v1::JobSpec& spec, JobConfig* config) const;

 private:
  // One file: `path` beneath the roots, or else the data set `dataset`. `field` is the path's
  // field (data.train.csv.path); `dataset_field` the id's.
  absl::StatusOr<OpenFile> OpenOne(const std::string& field, const std::string& path,
                                   const std::string& dataset_field,
                                   const std::string& dataset) const;
  // The files of one source; `out` (nullable) is rewritten to read them.
  absl::Status OpenSource(const v1::DataSource& src, const std::string& where,
                          DataSourceConfig* out, JobFiles* files) const;

  const DataRoots* roots_;
  const DatasetStore* datasets_;
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_JOB_DATA_H_
