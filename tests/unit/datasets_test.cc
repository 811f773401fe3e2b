// The store of uploaded data sets (issue 22): atomic publication, checksum, limits and quota,
// concurrent uploads, what a restart finds; and JobData, which points a job at confined files.
#include "service/server/datasets.h"

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/server/job_data.h"
#include "service/spec/convert.h"
#include "service/util/sha256.h"
#include "tests/unit/data_files.h"

namespace cajal {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_files::MakeTempDir;
using testing_files::ReadRaw;
using testing_files::WriteRaw;

std::string Sha(const std::string& bytes) {
  Sha256 h;
  h.Update(bytes);
  return h.HexDigest();
}

v1::UploadDatasetHeader Header(const std::string& bytes, const std::string& name = "d.csv") {
  v1::UploadDatasetHeader h;
  h.set_name(name);
  h.set_size_bytes(static_cast<int64_t>(bytes.size()));
  h.set_sha256(Sha(bytes));
  return h;
}

// The names in a directory, sorted.
std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class DatasetStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<DatasetStore>> s = DatasetStore::Open(dir_, limits_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  // Uploads `bytes` in chunks of `chunk`; the status of the first failing step.
  absl::StatusOr<v1::Dataset> Upload(const std::string& bytes, size_t chunk = 3) {
    absl::StatusOr<std::unique_ptr<DatasetStore::Upload>> u = store_->Begin(Header(bytes));
    if (!u.ok()) return u.status();
    for (size_t i = 0; i < bytes.size(); i += chunk) {
      absl::Status s = (*u)->Append(absl::string_view(bytes).substr(i, chunk));
      if (!s.ok()) return s;
    }
    return (*u)->Commit();
  }

  std::string dir_ = MakeTempDir() + "/datasets";
  DatasetLimits limits_{/*max_dataset_bytes=*/1000, /*max_total_bytes=*/2500};
  std::unique_ptr<DatasetStore> store_;
};

TEST_F(DatasetStoreTest, UploadThenOpenListGet) {
  const std::string bytes = "1,2,0\n3,4,1\n";
  absl::StatusOr<v1::Dataset> d = Upload(bytes);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(IsDatasetId(d->id()));
  EXPECT_EQ(d->name(), "d.csv");
  EXPECT_EQ(d->size_bytes(), static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(d->sha256(), Sha(bytes));
  EXPECT_GT(d->create_time().seconds(), 0);
  EXPECT_EQ(ReadRaw(dir_ + "/" + d->id() + "/data"), bytes);
  EXPECT_THAT(Entries(dir_), ElementsAre(".incoming", d->id()));
  EXPECT_THAT(Entries(dir_ + "/.incoming"), ElementsAre());

  absl::StatusOr<OpenFile> f = store_->OpenData("data.train.csv.dataset", d->id());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(ReadRaw(f->proc_path()), bytes);
  absl::StatusOr<v1::ListDatasetsResponse> list = store_->List({});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->datasets_size(), 1);
  EXPECT_EQ(list->datasets(0).id(), d->id());
  EXPECT_EQ(store_->used_bytes(), static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(store_->reserved_bytes(), 0);
}

TEST_F(DatasetStoreTest, ChecksumMismatchIsDataLossAndLeavesNothing) {
  const std::string bytes = "1,2,0\n";
  v1::UploadDatasetHeader h = Header(bytes);
  h.set_sha256(Sha("something else"));
  absl::StatusOr<std::unique_ptr<DatasetStore::Upload>> u = store_->Begin(h);
  ASSERT_TRUE(u.ok()) << u.status();
  ASSERT_TRUE((*u)->Append(bytes).ok());
  absl::StatusOr<v1::Dataset> d = (*u)->Commit();
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(d.status().message()),
              AllOf(HasSubstr(Sha(bytes)), HasSubstr("nothing was stored")));
  EXPECT_THAT(Entries(dir_), ElementsAre(".incoming"));
  EXPECT_THAT(Entries(dir_ + "/.incoming"), ElementsAre());
  EXPECT_EQ(store_->reserved_bytes(), 0);
}

TEST_F(DatasetStoreTest, ShortAndLongUploadsAreRefused) {
  absl::StatusOr<std::unique_ptr<DatasetStore::Upload>> u = store_->Begin(Header("12345"));
  ASSERT_TRUE(u.ok());
  ASSERT_TRUE((*u)->Append("123").ok());
  absl::StatusOr<v1::Dataset> d = (*u)->Commit();
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("ended after 3 of the 5 bytes"));

  u = store_->Begin(Header("12345"));
  ASSERT_TRUE(u.ok());
  absl::Status s = (*u)->Append("123456");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("more bytes than header.size_bytes (5)"));
  EXPECT_EQ(store_->reserved_bytes(), 0);
  EXPECT_THAT(Entries(dir_ + "/.incoming"), ElementsAre());
}

TEST_F(DatasetStoreTest, AnUploadDroppedBeforeCommitLeavesNothing) {
  {
    absl::StatusOr<std::unique_ptr<DatasetStore::Upload>> u = store_->Begin(Header("12345"));
    ASSERT_TRUE(u.ok());
    ASSERT_TRUE((*u)->Append("12").ok());
    EXPECT_THAT(Entries(dir_ + "/.incoming"), ::testing::SizeIs(1));
    EXPECT_EQ(store_->reserved_bytes(), 5);
  }
  EXPECT_THAT(Entries(dir_ + "/.incoming"), ElementsAre());
  EXPECT_EQ(store_->reserved_bytes(), 0);
  EXPECT_EQ(store_->List({})->datasets_size(), 0);
}

TEST_F(DatasetStoreTest, SizeLimitAndQuotaAreCheckedAtTheHeader) {
  absl::StatusOr<std::unique_ptr<DatasetStore::Upload>> u =
      store_->Begin(Header(std::string(1001, 'x')));
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(u.status().message()), HasSubstr("--max_dataset_bytes=1000"));

  // Two uploads in progress reserve 1800 of 2500 bytes; a third of 800 does not fit.
  auto a = store_->Begin(Header(std::string(900, 'a')));
  auto b = store_->Begin(Header(std::string(900, 'b')));
  ASSERT_TRUE(a.ok() && b.ok());
  auto c = store_->Begin(Header(std::string(800, 'c')));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(c.status().message()),
              AllOf(HasSubstr("--max_datasets_bytes=2500"), HasSubstr("has 700 bytes free")));
  a->reset();  // abandoned: its reservation returns
  EXPECT_TRUE(store_->Begin(Header(std::string(800, 'c'))).ok());
}

TEST_F(DatasetStoreTest, TheHeaderIsValidated) {
  v1::UploadDatasetHeader h = Header("abc");
  h.set_size_bytes(0);
  EXPECT_THAT(std::string(store_->Begin(h).status().message()),
              HasSubstr("header.size_bytes: must be > 0, got 0"));
  h = Header("abc");
  h.set_sha256("xyz");
  EXPECT_THAT(std::string(store_->Begin(h).status().message()),
              HasSubstr("header.sha256: must be 64 hex characters"));
  h = Header("abc", "");
  EXPECT_THAT(std::string(store_->Begin(h).status().message()), HasSubstr("header.name"));
  h = Header("abc", "a\nb");
  EXPECT_THAT(std::string(store_->Begin(h).status().message()),
              HasSubstr("header.name: must not contain control characters"));
}

TEST_F(DatasetStoreTest, ChunksAreAtMostOneMebibyte) {
  limits_.max_dataset_bytes = 4 << 20;
  limits_.max_total_bytes = 4 << 20;
  Reopen();
  const std::string big(kMaxUploadChunkBytes + 1, 'x');
  auto u = store_->Begin(Header(big));
  ASSERT_TRUE(u.ok());
  absl::Status s = (*u)->Append(big);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("more than the limit of 1048576"));
}

TEST_F(DatasetStoreTest, ARestartFindsWholeDataSetsAndRemovesPartialOnes) {
  absl::StatusOr<v1::Dataset> kept = Upload("1,2,0\n");
  ASSERT_TRUE(kept.ok());
  // What a process killed mid-upload leaves: a directory in .incoming with part of a file.
  auto partial = store_->Begin(Header("0123456789"));
  ASSERT_TRUE(partial.ok());
  ASSERT_TRUE((*partial)->Append("0123").ok());
  const std::string copy = MakeTempDir() + "/incoming-copy";
  std::filesystem::copy(dir_ + "/.incoming", copy, std::filesystem::copy_options::recursive);
  partial->reset();
  std::filesystem::copy(copy, dir_ + "/.incoming", std::filesystem::copy_options::recursive);
  ASSERT_THAT(Entries(dir_ + "/.incoming"), ::testing::SizeIs(1));
  // And a directory with an id's name but no record: not a data set.
  std::filesystem::create_directories(dir_ + "/" + std::string(32, 'a'));
  WriteRaw(dir_ + "/" + std::string(32, 'a') + "/data", "x");

  Reopen();
  EXPECT_THAT(Entries(dir_ + "/.incoming"), ElementsAre());
  absl::StatusOr<v1::ListDatasetsResponse> list = store_->List({});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->datasets_size(), 1);
  EXPECT_EQ(list->datasets(0).id(), kept->id());
  EXPECT_EQ(list->datasets(0).sha256(), kept->sha256());
  EXPECT_EQ(store_->used_bytes(), 6);
  EXPECT_EQ(store_->OpenData("f", std::string(32, 'a')).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(DatasetStoreTest, DeleteMakesItUnknownAndFreesTheQuota) {
  absl::StatusOr<v1::Dataset> d = Upload(std::string(900, 'z'));
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(store_->Delete(d->id()).ok());
  EXPECT_EQ(store_->used_bytes(), 0);
  EXPECT_THAT(Entries(dir_), ElementsAre(".incoming"));
  absl::StatusOr<OpenFile> f = store_->OpenData("data.train.csv.dataset", d->id());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(f.status().message()),
              HasSubstr("data.train.csv.dataset: no data set " + d->id() + " on this server"));
  EXPECT_EQ(store_->Get(d->id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete(d->id()).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete("../etc").code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DatasetStoreTest, ListPagesInCreationOrder) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<v1::Dataset> d = Upload(absl::StrCat("row ", i, "\n"));
    ASSERT_TRUE(d.ok());
    ids.push_back(d->id());
  }
  v1::ListDatasetsRequest r;
  r.set_page_size(2);
  std::vector<std::string> seen;
  int pages = 0;
  do {
    absl::StatusOr<v1::ListDatasetsResponse> page = store_->List(r);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& d : page->datasets()) seen.push_back(d.id());
    r.set_page_token(page->next_page_token());
    ++pages;
  } while (!r.page_token().empty());
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(pages, 3);
  r.set_page_token("garbage");
  EXPECT_EQ(store_->List(r).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DatasetStoreTest, ConcurrentUploadsAllLand) {
  limits_.max_total_bytes = 1 << 20;
  Reopen();
  constexpr int kUploads = 8;
  std::vector<absl::StatusOr<v1::Dataset>> results(kUploads, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kUploads; ++i) {
    threads.emplace_back([&, i] { results[i] = Upload(std::string(500 + i, 'a' + i), 7); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kUploads; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    EXPECT_EQ(ReadRaw(dir_ + "/" + results[i]->id() + "/data"), std::string(500 + i, 'a' + i));
  }
  EXPECT_EQ(store_->List({})->datasets_size(), kUploads);
  EXPECT_EQ(store_->reserved_bytes(), 0);
}

// ---- JobData ------------------------------------------------------------------------------

class JobDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = DatasetStore::Open(root_ + "/datasets", DatasetLimits{});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto roots = DataRoots::Create({root_});
    ASSERT_TRUE(roots.ok()) << roots.status();
    roots_ = *std::move(roots);
    WriteRaw(root_ + "/secret.csv", "1,2,0\ndb_password,hunter2secret,1\n");
    WriteRaw(outside_ + "/secret.csv", "db_password,hunter2secret\n");
  }
  std::string root_ = MakeTempDir();
  std::string outside_ = MakeTempDir();
  std::unique_ptr<DatasetStore> store_;
  std::unique_ptr<DataRoots> roots_;
};

TEST_F(JobDataTest, CheckRefusesPathsOutsideTheRootsAndUnknownDataSets) {
  JobData data(roots_.get(), store_.get());
  v1::JobSpec spec;
  spec.mutable_data()->mutable_train()->mutable_csv()->set_path(outside_ + "/secret.csv");
  absl::Status s = data.Check(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("data.train.csv.path: "), HasSubstr(root_),
                                              Not(HasSubstr("hunter2"))));

  spec.mutable_data()->mutable_train()->mutable_csv()->set_path("");
  spec.mutable_data()->mutable_train()->mutable_csv()->set_dataset(std::string(32, '0'));
  s = data.Check(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr("data.train.csv.dataset: no data set"));

  spec.mutable_data()->mutable_train()->set_builtin("xor");
  spec.mutable_data()->mutable_test()->mutable_idx()->set_images(root_ + "/secret.csv");
  spec.mutable_data()->mutable_test()->mutable_idx()->set_labels_dataset(std::string(32, '1'));
  s = data.Check(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr("data.test.idx.labels_dataset: no data set"));
}

// What a job reads comes from the descriptors Open holds, and its errors quote no content.
TEST_F(JobDataTest, OpenPointsTheConfigAtTheOpenFilesWithContentFreeErrors) {
  JobData data(roots_.get(), store_.get());
  v1::JobSpec spec;
  spec.mutable_data()->mutable_train()->mutable_csv()->set_path(root_ + "/secret.csv");
  JobConfig config;
  absl::StatusOr<JobFiles> files = data.Open(spec, &config);
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ(config.train.csv_path, (*files)[0].proc_path());
  EXPECT_EQ(config.train.csv.name, root_ + "/secret.csv");
  EXPECT_TRUE(config.train.csv.redact_content);
  absl::StatusOr<Dataset> ds = LoadCsv(config.train.csv_path, config.train.csv);
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()),
              AllOf(HasSubstr(root_ + "/secret.csv:2: column 1 is not a number"),
                    Not(HasSubstr("db_password")), Not(HasSubstr("/proc/self"))));
}

TEST_F(JobDataTest, AnUploadedDataSetIsReadByItsId) {
  JobData data(roots_.get(), store_.get());
  const std::string bytes = "1,2,0\n3,4,1\n";
  auto u = store_->Begin(Header(bytes));
  ASSERT_TRUE(u.ok());
  ASSERT_TRUE((*u)->Append(bytes).ok());
  absl::StatusOr<v1::Dataset> d = (*u)->Commit();
  ASSERT_TRUE(d.ok()) << d.status();
  v1::JobSpec spec;
  spec.mutable_data()->mutable_train()->mutable_csv()->set_dataset(d->id());
  ASSERT_TRUE(data.Check(spec).ok());
  JobConfig config;
  absl::StatusOr<JobFiles> files = data.Open(spec, &config);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_EQ(config.train.csv.name, "data set " + d->id());
  absl::StatusOr<Dataset> ds = LoadCsv(config.train.csv_path, config.train.csv);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->count, 2);
  EXPECT_EQ(ds->name, "data set " + d->id());
}

}  // namespace
}  // namespace cajal
