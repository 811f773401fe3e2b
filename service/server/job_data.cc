#include "service/server/job_data.h"

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace cajal {

absl::StatusOr<OpenFile> JobData::OpenOne(const std::string& field, const std::string& path,
                                          const std::string& dataset_field,
                                          const std::string& dataset) const {
  if (!dataset.empty()) return datasets_->OpenData(dataset_field, dataset);
  return roots_->Open(field, path);
}

absl::Status JobData::OpenSource(const v1::DataSource& src, const std::string& where,
                                 DataSourceConfig* out, JobFiles* files) const {
  // What messages call a file: the path as given, or the data set.
  auto shown = [](const std::string& path, const std::string& dataset) {
    return dataset.empty() ? path : absl::StrCat("data set ", dataset);
  };
  if (src.has_csv()) {
    const v1::CsvSource& csv = src.csv();
    ASSIGN_OR_RETURN(OpenFile file, OpenOne(where + ".csv.path", csv.path(), where + ".csv.dataset",
                                            csv.dataset()));
    if (out != nullptr) {
      out->csv_path = file.proc_path();
      out->csv.name = shown(csv.path(), csv.dataset());
      out->csv.redact_content = true;
    }
    files->push_back(std::move(file));
  } else if (src.has_idx()) {
    const v1::IdxSource& idx = src.idx();
    ASSIGN_OR_RETURN(OpenFile images, OpenOne(where + ".idx.images", idx.images(),
                                              where + ".idx.images_dataset", idx.images_dataset()));
    ASSIGN_OR_RETURN(OpenFile labels, OpenOne(where + ".idx.labels", idx.labels(),
                                              where + ".idx.labels_dataset", idx.labels_dataset()));
    if (out != nullptr) {
      out->images = images.proc_path();
      out->labels = labels.proc_path();
      out->idx.images_name = shown(idx.images(), idx.images_dataset());
      out->idx.labels_name = shown(idx.labels(), idx.labels_dataset());
      out->idx.redact_content = true;
    }
    files->push_back(std::move(images));
    files->push_back(std::move(labels));
  }
  return absl::OkStatus();
}

absl::Status JobData::Check(const v1::JobSpec& spec) const {
  JobFiles files;
  RETURN_IF_ERROR(OpenSource(spec.data().train(), "data.train", nullptr, &files));
  if (spec.data().has_test()) {
    RETURN_IF_ERROR(OpenSource(spec.data().test(), "data.test", nullptr, &files));
  }
  return absl::OkStatus();
}

absl::StatusOr<JobFiles> JobData::Open(const v1::JobSpec& spec, JobConfig* config) const {
  JobFiles files;
  RETURN_IF_ERROR(OpenSource(spec.data().train(), "data.train", &config->train, &files));
  if (spec.data().has_test()) {
    RETURN_IF_ERROR(OpenSource(spec.data().test(), "data.test", &config->test, &files));
  }
  return files;
}

}  // namespace cajal
