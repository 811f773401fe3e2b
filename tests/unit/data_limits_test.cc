// The loaders' bounds (issue 22): a lying header fails fast in a few MB, CSV rows and columns are
// bounded, errors can be made content-free, and Inspect* report what a source holds (checked
// against what the loaders then load).
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/data_files.h"

namespace cajal {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_files::AppendU32;
using testing_files::Idx;
using testing_files::MakeTempDir;
using testing_files::ReadRaw;
using testing_files::WriteGzip;
using testing_files::WriteRaw;

// The process's peak resident set, in bytes, since the last ResetPeakRss().
int64_t PeakRssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      int64_t kb = 0;
      std::string digits;
      for (char c : line) {
        if (c >= '0' && c <= '9') digits.push_back(c);
      }
      EXPECT_TRUE(absl::SimpleAtoi(digits, &kb)) << line;
      return kb * 1024;
    }
  }
  ADD_FAILURE() << "no VmHWM in /proc/self/status";
  return 0;
}

// Resets VmHWM to the current RSS (Linux >= 4.0: "5" to clear_refs).
void ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
}

// What a loaded Dataset occupies: DatasetInfo::bytes must predict it.
int64_t BytesOf(const Dataset& ds) {
  return static_cast<int64_t>(ds.u8.size() + ds.f32.size() * sizeof(float) +
                              ds.labels.size() * sizeof(int32_t) +
                              ds.targets.size() * sizeof(float));
}

// 116 bytes whose header promises 10,000,000 images of 28x28 (7.8 GB): issue 22's file.
std::string LyingImages() {
  std::string out;
  AppendU32(0x803, &out);
  AppendU32(10000000, &out);
  AppendU32(28, &out);
  AppendU32(28, &out);
  out.append(100, '\x07');
  return out;
}

std::string Labels(uint32_t n) {
  std::vector<uint8_t> l(n);
  for (uint32_t i = 0; i < n; ++i) l[i] = static_cast<uint8_t>(i % 3);
  return Idx({n}, l);
}

class LyingHeaderTest : public ::testing::TestWithParam<bool> {
 protected:
  // The lying images, raw or gzip per the parameter.
  std::string Write() {
    const std::string path = dir_ + (GetParam() ? "/lying.gz" : "/lying");
    if (GetParam()) {
      WriteGzip(path, LyingImages());
    } else {
      WriteRaw(path, LyingImages());
    }
    WriteRaw(labels_, Labels(10000000));
    return path;
  }
  std::string dir_ = MakeTempDir();
  std::string labels_ = dir_ + "/labels";
};

TEST_P(LyingHeaderTest, LoadFailsFastWithinAFewMegabytes) {
  const std::string images = Write();
  ResetPeakRss();
  const int64_t before = PeakRssBytes();
  absl::StatusOr<Dataset> ds = LoadIdx(images, labels_);
  const int64_t grew = PeakRssBytes() - before;
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()),
              AllOf(HasSubstr(images), HasSubstr("truncated"), HasSubstr("file has 100")));
  // The labels (10 MB, honest) are read first for the gzip case; the images never get more
  // than one growth step. Far below the 7.8 GB the header promises.
  EXPECT_LT(grew, int64_t{40} << 20) << "peak RSS grew by " << grew << " bytes";
}

TEST_P(LyingHeaderTest, InspectFailsTheSameWay) {
  const std::string images = Write();
  absl::StatusOr<DatasetInfo> info = InspectIdx(images, labels_);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(info.status().message()),
              AllOf(HasSubstr(images), HasSubstr("truncated")));
}

INSTANTIATE_TEST_SUITE_P(RawAndGzip, LyingHeaderTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Gzip" : "Raw"; });

TEST(IdxLimitsTest, RawFileSizeIsCheckedBeforeAnyAllocation) {
  const std::string dir = MakeTempDir();
  WriteRaw(dir + "/images", Idx({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 9}));  // one byte extra
  WriteRaw(dir + "/labels", Labels(2));
  absl::StatusOr<Dataset> ds = LoadIdx(dir + "/images", dir + "/labels");
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()),
              HasSubstr(dir + "/images: has data past the 8 bytes its header describes"));
}

TEST(IdxLimitsTest, LargerThanTheCapIsRefusedFromTheHeader) {
  const std::string dir = MakeTempDir();
  std::string images;
  AppendU32(0x803, &images);
  for (uint32_t d : {1u << 20, 1u << 10, 1u << 10}) AppendU32(d, &images);  // 2^40 bytes
  WriteRaw(dir + "/images", images);
  WriteRaw(dir + "/labels", Labels(2));
  absl::StatusOr<DatasetInfo> info = InspectIdx(dir + "/images", dir + "/labels");
  ASSERT_FALSE(info.ok());
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("IDX data larger than 16 GiB"));
}

TEST(IdxLimitsTest, CountsAreComparedBeforeTheImagesAreRead) {
  const std::string dir = MakeTempDir();
  WriteGzip(dir + "/images.gz", LyingImages());  // would be "truncated" if it were read
  WriteRaw(dir + "/labels", Labels(3));
  absl::StatusOr<Dataset> ds = LoadIdx(dir + "/images.gz", dir + "/labels");
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()),
              HasSubstr("has 10000000 images but " + dir + "/labels has 3 labels"));
}

// Content-free errors: the names given, never the file's bytes or header values.
TEST(IdxLimitsTest, RedactedErrorsQuoteNothingFromTheFile) {
  const std::string dir = MakeTempDir();
  IdxOptions o;
  o.redact_content = true;
  o.images_name = "data.train.idx.images";
  o.labels_name = "data.train.idx.labels";
  WriteRaw(dir + "/images", "root:x:0:0:root:/root:/bin/bash\n");
  WriteRaw(dir + "/labels", Labels(3));
  absl::StatusOr<Dataset> ds = LoadIdx(dir + "/images", dir + "/labels", o);
  ASSERT_FALSE(ds.ok());
  std::string message(ds.status().message());
  EXPECT_THAT(message, AllOf(HasSubstr("data.train.idx.images: not an IDX file of u8 images"),
                             Not(HasSubstr("0x")), Not(HasSubstr(dir))));
  // A dimension echoed would leak four bytes of the file.
  std::string huge_dim;
  AppendU32(0x803, &huge_dim);
  AppendU32(0xf0f0f0f0, &huge_dim);
  WriteRaw(dir + "/images", huge_dim + std::string(8, '\0'));
  ds = LoadIdx(dir + "/images", dir + "/labels", o);
  ASSERT_FALSE(ds.ok());
  message = std::string(ds.status().message());
  EXPECT_THAT(message, AllOf(HasSubstr("bad dimension 0"), Not(HasSubstr("4042322160"))));
  WriteGzip(dir + "/images.gz", LyingImages());
  ds = LoadIdx(dir + "/images.gz", dir + "/labels", o);
  message = std::string(ds.status().message());
  EXPECT_THAT(message, AllOf(HasSubstr("declare different numbers of examples"),
                             Not(HasSubstr("10000000")), Not(HasSubstr("3 labels"))));
}

TEST(IdxInspectTest, ReportsWhatLoadIdxLoads) {
  const std::string dir = MakeTempDir();
  std::vector<uint8_t> px(5 * 3 * 4);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i);
  for (bool gzip : {false, true}) {
    const std::string images = dir + (gzip ? "/i.gz" : "/i"), labels = dir + "/l";
    if (gzip) {
      WriteGzip(images, Idx({5, 3, 4}, px));
    } else {
      WriteRaw(images, Idx({5, 3, 4}, px));
    }
    WriteRaw(labels, Idx({5}, {0, 4, 1, 1, 2}));
    absl::StatusOr<DatasetInfo> info = InspectIdx(images, labels);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_THAT(info->shape, ElementsAre(1, 3, 4));
    EXPECT_EQ(info->count, 5);
    EXPECT_EQ(info->num_classes, 5);
    EXPECT_EQ(info->target_dim, 0);
    absl::StatusOr<Dataset> ds = LoadIdx(images, labels);
    ASSERT_TRUE(ds.ok()) << ds.status();
    EXPECT_EQ(info->bytes, BytesOf(*ds));
    EXPECT_EQ(info->bytes, 5 * 12 + 5 * 4);
  }
}

// gzip's trailer (ISIZE) is the fast check; a file of two gzip members has the second member's
// size there, so Inspect counts instead, and agrees with the loader.
TEST(IdxInspectTest, MultiMemberGzipIsCounted) {
  const std::string dir = MakeTempDir();
  const std::string whole = Idx({4, 2, 2}, std::vector<uint8_t>(16, 9));
  WriteGzip(dir + "/a.gz", whole.substr(0, 10));
  WriteGzip(dir + "/b.gz", whole.substr(10));
  WriteRaw(dir + "/i.gz", ReadRaw(dir + "/a.gz") + ReadRaw(dir + "/b.gz"));
  WriteRaw(dir + "/l", Labels(4));
  absl::StatusOr<DatasetInfo> info = InspectIdx(dir + "/i.gz", dir + "/l");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->count, 4);
  EXPECT_TRUE(LoadIdx(dir + "/i.gz", dir + "/l").ok());
}

// A trailer forged to match a lying header does not get past zlib, which checks the trailer
// against the stream it inflated: Inspect and the loader both call the stream corrupt.
TEST(IdxInspectTest, AForgedTrailerIsCaught) {
  const std::string dir = MakeTempDir();
  WriteGzip(dir + "/i.gz", LyingImages());
  std::string gz = ReadRaw(dir + "/i.gz");
  const uint32_t declared = static_cast<uint32_t>((16 + int64_t{10000000} * 784) & 0xffffffff);
  for (int i = 0; i < 4; ++i) gz[gz.size() - 4 + i] = static_cast<char>(declared >> (8 * i));
  WriteRaw(dir + "/i.gz", gz);
  WriteRaw(dir + "/l", Labels(10000000));
  for (const absl::Status& s : {InspectIdx(dir + "/i.gz", dir + "/l").status(),
                                LoadIdx(dir + "/i.gz", dir + "/l").status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()),
                HasSubstr(dir + "/i.gz: corrupt gzip stream (incorrect length check)"));
  }
}

// ---------------------------------------------------------------------------------------------
// CSV

class CsvLimitsTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    WriteRaw(path_, text);
    return path_;
  }
  std::string dir_ = MakeTempDir();
  std::string path_ = dir_ + "/data.csv";
};

TEST_F(CsvLimitsTest, InspectCountsRowsAndColumnsAndPredictsTheBytes) {
  Write("a,b,c,label\n1,2,3,0\n\n4,5,6,1\r\n7,8,9,2\n");
  CsvOptions o;
  o.header = true;
  absl::StatusOr<DatasetInfo> info = InspectCsv(path_, o);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->shape, ElementsAre(3));
  EXPECT_EQ(info->count, 3);
  EXPECT_EQ(info->num_classes, 0);  // unknown until loaded: the scan reads no cell
  EXPECT_EQ(info->target_dim, 0);
  absl::StatusOr<Dataset> ds = LoadCsv(path_, o);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(info->bytes, BytesOf(*ds));
  EXPECT_EQ(ds->f32.capacity(), ds->f32.size());  // reserved exactly from the scan

  o.regression = true;
  info = InspectCsv(path_, o);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->target_dim, 1);
  ds = LoadCsv(path_, o);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(info->bytes, BytesOf(*ds));
}

TEST_F(CsvLimitsTest, InspectFindsARaggedRowWithoutParsing) {
  Write("1,2,0\nnot,a,number\n3,4\n");
  absl::StatusOr<DatasetInfo> info = InspectCsv(path_, CsvOptions{});
  ASSERT_FALSE(info.ok());
  EXPECT_THAT(std::string(info.status().message()),
              HasSubstr(path_ + ":3: has 2 columns, expected 3"));
}

TEST_F(CsvLimitsTest, TooManyColumnsIsAClearError) {
  std::string row;
  for (int64_t i = 0; i <= kMaxCsvColumns; ++i) row += "0,";
  row += "1\n";
  Write(row);
  absl::StatusOr<Dataset> ds = LoadCsv(path_, CsvOptions{});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()),
              HasSubstr(absl::StrCat(path_, ":1: has ", kMaxCsvColumns + 2,
                                     " columns, more than the limit of ", kMaxCsvColumns)));
}

TEST_F(CsvLimitsTest, ALineLongerThanTheLimitIsAnErrorNotAnAllocation) {
  {
    std::ofstream out(path_, std::ios::binary);
    out << "1,2,0\n";
    const std::string block(1 << 20, '7');
    for (int64_t i = 0; i <= kMaxCsvLineBytes >> 20; ++i) out << block;
    out << ",1\n";
  }
  ResetPeakRss();
  const int64_t before = PeakRssBytes();
  absl::StatusOr<Dataset> ds = LoadCsv(path_, CsvOptions{});
  const int64_t grew = PeakRssBytes() - before;
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()),
              HasSubstr(absl::StrCat(path_, ":2: line longer than ", kMaxCsvLineBytes, " bytes")));
  EXPECT_LT(grew, 2 * kMaxCsvLineBytes + (int64_t{16} << 20));
}

TEST_F(CsvLimitsTest, RedactedErrorsNameFileLineAndColumnOnly) {
  CsvOptions o;
  o.redact_content = true;
  o.name = "data.train.csv.path";
  Write("1,2,0\ndb_password,hunter2secret,1\n");
  for (int label_column : {-1, 0, 1}) {
    o.label_column = label_column;
    absl::StatusOr<Dataset> ds = LoadCsv(path_, o);
    ASSERT_FALSE(ds.ok());
    const std::string message(ds.status().message());
    EXPECT_THAT(message,
                AllOf(HasSubstr("data.train.csv.path:2: column "), Not(HasSubstr("db_password")),
                      Not(HasSubstr("hunter2")), Not(HasSubstr(path_))))
        << "label_column " << label_column;
  }
  Write("1,2,0\n3,4,0.5\n");
  o.label_column = -1;
  absl::StatusOr<Dataset> ds = LoadCsv(path_, o);
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()),
              AllOf(HasSubstr("data.train.csv.path:2: column 3: the label is not a class index"),
                    Not(HasSubstr("0.5"))));
}

TEST_F(CsvLimitsTest, UnredactedErrorsStillQuoteTheCell) {
  Write("1,2,0\ndb_password,hunter2secret,1\n");
  absl::StatusOr<Dataset> ds = LoadCsv(path_, CsvOptions{});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()),
              HasSubstr(path_ + ":2: column 1 is not a number: \"db_password\""));
}

// ---------------------------------------------------------------------------------------------
// Builtins

TEST(BuiltinInspectTest, TruthTablesAndAddingMatchTheirLoadedSize) {
  for (const std::string name : {"xor", "and", "or"}) {
    absl::StatusOr<DatasetInfo> info = InspectBuiltin(name, BuiltinOptions{});
    ASSERT_TRUE(info.ok()) << info.status();
    absl::StatusOr<Dataset> ds = LoadBuiltin(name, BuiltinOptions{});
    ASSERT_TRUE(ds.ok());
    EXPECT_EQ(info->count, 4);
    EXPECT_EQ(info->num_classes, 2);
    EXPECT_EQ(info->bytes, BytesOf(*ds)) << name;
  }
  BuiltinOptions o;
  o.sequence_length = 7;
  o.examples = 30;
  for (bool test_split : {false, true}) {
    o.test_split = test_split;
    absl::StatusOr<DatasetInfo> info = InspectBuiltin("adding", o);
    ASSERT_TRUE(info.ok()) << info.status();
    absl::StatusOr<Dataset> ds = LoadBuiltin("adding", o);
    ASSERT_TRUE(ds.ok());
    EXPECT_EQ(info->count, test_split ? 6 : 30);
    EXPECT_THAT(info->shape, ElementsAre(7, 2));
    EXPECT_EQ(info->target_dim, 1);
    EXPECT_EQ(info->bytes, BytesOf(*ds));
  }
}

TEST(BuiltinInspectTest, AddingLargerThanTheCapIsRefusedBeforeAllocating) {
  BuiltinOptions o;
  o.sequence_length = 10000;
  o.examples = 10000000;  // 800 GB of floats
  for (auto status : {LoadBuiltin("adding", o).status(), InspectBuiltin("adding", o).status()}) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), HasSubstr("more than the 16 GiB limit"));
  }
}

TEST(BuiltinInspectTest, FashionMnistFromItsHeaders) {
  if (access((BuiltinDataDir() + "/train-images-idx3-ubyte.gz").c_str(), R_OK) != 0) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  BuiltinOptions o;
  o.test_split = true;
  absl::StatusOr<DatasetInfo> info = InspectBuiltin("fashion-mnist", o);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->count, 10000);
  EXPECT_THAT(info->shape, ElementsAre(1, 28, 28));
  EXPECT_EQ(info->num_classes, 10);
  EXPECT_EQ(info->bytes, 10000 * 784 + 10000 * 4);
}

TEST(BuiltinInspectTest, UnknownNameIsNamed) {
  absl::StatusOr<DatasetInfo> info = InspectBuiltin("mnist", BuiltinOptions{});
  ASSERT_FALSE(info.ok());
  EXPECT_THAT(std::string(info.status().message()),
              HasSubstr("unknown builtin data set \"mnist\""));
}

}  // namespace
}  // namespace cajal
