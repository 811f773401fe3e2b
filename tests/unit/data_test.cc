// Data loading (IDX, CSV, builtins), normalization and batch assembly.
#include <stdlib.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/data_files.h"

namespace cajal {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::FloatNear;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pointwise;
using testing_files::Idx;
using testing_files::MakeTempDir;
using testing_files::WriteGzip;
using testing_files::WriteRaw;

constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// Three 2x4 images with pixel values 10·i + j, and labels 0, 2, 1.
std::vector<uint8_t> ImagePixels() {
  std::vector<uint8_t> px;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 8; ++j) px.push_back(static_cast<uint8_t>(10 * i + j));
  }
  return px;
}
const std::string& Images() {
  static const std::string* s = new std::string(Idx({3, 2, 4}, ImagePixels()));
  return *s;
}
const std::string& Labels() {
  static const std::string* s = new std::string(Idx({3}, {0, 2, 1}));
  return *s;
}

class IdxTest : public ::testing::Test {
 protected:
  // Writes images and labels (raw) and loads them.
  absl::StatusOr<Dataset> Load(const std::string& images, const std::string& labels) {
    WriteRaw(images_path_, images);
    WriteRaw(labels_path_, labels);
    return LoadIdx(images_path_, labels_path_);
  }
  std::string dir_ = MakeTempDir();
  std::string images_path_ = dir_ + "/images-idx3-ubyte";
  std::string labels_path_ = dir_ + "/labels-idx1-ubyte";
};

void ExpectTinyImages(const Dataset& ds) {
  EXPECT_EQ(ds.count, 3);
  EXPECT_THAT(ds.shape, ElementsAre(1, 2, 4));
  EXPECT_EQ(ds.example_size(), 8);
  EXPECT_THAT(ds.u8, ElementsAreArray(ImagePixels()));
  EXPECT_TRUE(ds.f32.empty());
  EXPECT_THAT(ds.labels, ElementsAre(0, 2, 1));
  EXPECT_EQ(ds.num_classes, 3);
  EXPECT_TRUE(ds.classification());
}

TEST_F(IdxTest, LoadsRawFiles) {
  absl::StatusOr<Dataset> ds = Load(Images(), Labels());
  ASSERT_TRUE(ds.ok()) << ds.status();
  ExpectTinyImages(*ds);
  EXPECT_EQ(ds->name, images_path_);
}

TEST_F(IdxTest, LoadsGzipFiles) {
  const std::string images = dir_ + "/images.gz", labels = dir_ + "/labels.gz";
  WriteGzip(images, Images());
  WriteGzip(labels, Labels());
  absl::StatusOr<Dataset> ds = LoadIdx(images, labels);
  ASSERT_TRUE(ds.ok()) << ds.status();
  ExpectTinyImages(*ds);
}

struct IdxErrorCase {
  std::string name;
  std::string images;
  std::string labels;
  std::string message;  // expected fragment; the file's path is checked separately
  bool in_labels;       // whether the message names the labels file
};

class IdxErrorTest : public IdxTest, public ::testing::WithParamInterface<IdxErrorCase> {};

TEST_P(IdxErrorTest, NamesFileAndProblem) {
  const IdxErrorCase& c = GetParam();
  absl::StatusOr<Dataset> ds = Load(c.images, c.labels);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument) << ds.status();
  EXPECT_THAT(std::string(ds.status().message()),
              AllOf(HasSubstr(c.in_labels ? labels_path_ : images_path_), HasSubstr(c.message)));
}

std::string Truncate(const std::string& s, size_t n) { return s.substr(0, n); }

INSTANTIATE_TEST_SUITE_P(
    Errors, IdxErrorTest,
    ::testing::Values(
        // A labels file given as images: magic 0x801 where 0x803 is expected.
        IdxErrorCase{"BadMagic", Labels(), Labels(),
                     "not an IDX file of u8 images (magic 0x00000801, expected 0x00000803)", false},
        IdxErrorCase{"FloatImages", std::string("\0\0\x0d\x03", 4) + Images().substr(4), Labels(),
                     "magic 0x00000d03", false},
        IdxErrorCase{"ShorterThanMagic", Truncate(Images(), 2), Labels(),
                     "not an IDX file (shorter than its header)", false},
        IdxErrorCase{"TruncatedHeader", Truncate(Images(), 10), Labels(), "truncated IDX header",
                     false},
        IdxErrorCase{"TruncatedData", Truncate(Images(), Images().size() - 3), Labels(),
                     "truncated: header promises 24 bytes of data, file has 21", false},
        IdxErrorCase{"TrailingData", Images() + "x", Labels(),
                     "has data past the 24 bytes its header describes", false},
        IdxErrorCase{"ZeroDimension", Idx({3, 0, 4}, {}), Labels(), "bad dimension 1 = 0", false},
        IdxErrorCase{"TruncatedLabels", Images(), Truncate(Labels(), 10),
                     "truncated: header promises 3 bytes of data, file has 2", true},
        IdxErrorCase{"LabelsWithImageMagic", Images(), Images(),
                     "not an IDX file of u8 labels (magic 0x00000803, expected 0x00000801)", true}),
    [](const ::testing::TestParamInfo<IdxErrorCase>& info) { return info.param.name; });

TEST_F(IdxTest, CountMismatchNamesBothFiles) {
  absl::StatusOr<Dataset> ds = Load(Images(), Idx({2}, {0, 1}));
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(ds.status().message()),
      AllOf(HasSubstr(images_path_ + " has 3 images but " + labels_path_ + " has 2 labels")));
}

TEST_F(IdxTest, MissingFileIsNotFoundNamingThePath) {
  const std::string missing = dir_ + "/no-such-file.gz";
  WriteRaw(labels_path_, Labels());
  absl::StatusOr<Dataset> ds = LoadIdx(missing, labels_path_);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(missing));

  WriteRaw(images_path_, Images());
  ds = LoadIdx(images_path_, missing);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(missing));
}

TEST_F(IdxTest, TruncatedGzipIsAnError) {
  const std::string gz = dir_ + "/images.gz";
  WriteGzip(gz, Images());
  std::ifstream in(gz, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  WriteRaw(gz, bytes.substr(0, bytes.size() - 12));  // cut into the deflate stream and trailer
  WriteRaw(labels_path_, Labels());
  absl::StatusOr<Dataset> ds = LoadIdx(gz, labels_path_);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), AllOf(HasSubstr(gz), HasSubstr("truncated")));
}

// A damaged compressed stream is reported as such, not as a short file.
TEST_F(IdxTest, CorruptGzipStreamIsNamed) {
  std::vector<uint8_t> px(20 * 28 * 28);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * i) % 251);
  std::vector<uint8_t> labels(20);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<uint8_t>(i % 10);
  const std::string gz = dir_ + "/images.gz";
  WriteGzip(gz, Idx({20, 28, 28}, px));
  std::ifstream in(gz, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 100u);
  bytes[bytes.size() / 2] ^= 0xff;
  WriteRaw(gz, bytes);
  WriteRaw(labels_path_, Idx({20}, labels));
  absl::StatusOr<Dataset> ds = LoadIdx(gz, labels_path_);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()),
              AllOf(HasSubstr(gz + ": corrupt gzip stream"), Not(HasSubstr("truncated")),
                    Not(HasSubstr("shorter"))));
}

// ---------------------------------------------------------------------------------------------
// CSV

class CsvTest : public ::testing::Test {
 protected:
  absl::StatusOr<Dataset> Load(const std::string& text, const CsvOptions& options) {
    WriteRaw(path_, text);
    return LoadCsv(path_, options);
  }
  std::string dir_ = MakeTempDir();
  std::string path_ = dir_ + "/data.csv";
};

TEST_F(CsvTest, LastColumnIsTheLabelByDefault) {
  absl::StatusOr<Dataset> ds = Load("1,2,0\n3.5,-4,2\n", CsvOptions{});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->count, 2);
  EXPECT_THAT(ds->shape, ElementsAre(2));
  EXPECT_THAT(ds->f32, ElementsAre(1, 2, 3.5f, -4));
  EXPECT_TRUE(ds->u8.empty());
  EXPECT_THAT(ds->labels, ElementsAre(0, 2));
  EXPECT_EQ(ds->num_classes, 3);
  EXPECT_EQ(ds->name, path_);
}

TEST_F(CsvTest, PositiveLabelColumn) {
  CsvOptions o;
  o.label_column = 0;
  absl::StatusOr<Dataset> ds = Load("1,2,3\n0,5,6\n", o);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_THAT(ds->f32, ElementsAre(2, 3, 5, 6));
  EXPECT_THAT(ds->labels, ElementsAre(1, 0));
  EXPECT_EQ(ds->num_classes, 2);
}

TEST_F(CsvTest, NegativeLabelColumnCountsFromTheEnd) {
  CsvOptions o;
  o.label_column = -2;
  absl::StatusOr<Dataset> ds = Load("7,1,8\n9,0,10\n", o);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_THAT(ds->f32, ElementsAre(7, 8, 9, 10));
  EXPECT_THAT(ds->labels, ElementsAre(1, 0));
}

TEST_F(CsvTest, LabelColumnOutsideTheRow) {
  CsvOptions o;
  o.label_column = -4;
  absl::StatusOr<Dataset> ds = Load("7,1,8\n", o);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()),
              AllOf(HasSubstr("label_column -4 is outside the 3 columns"), HasSubstr(path_)));
}

TEST_F(CsvTest, HeaderSkipsFirstLineAndCrlfAndBlankLinesAreFine) {
  CsvOptions o;
  o.header = true;
  absl::StatusOr<Dataset> ds = Load("x,y,label\r\n1,2,1\r\n\r\n3,4,0\r\n", o);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->count, 2);
  EXPECT_THAT(ds->f32, ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(ds->labels, ElementsAre(1, 0));
}

TEST_F(CsvTest, HeaderWithoutTheOptionIsANonNumericValue) {
  absl::StatusOr<Dataset> ds = Load("x,y,label\n1,2,1\n", CsvOptions{});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()),
              HasSubstr(path_ + ":1: column 1 is not a number: \"x\""));
}

TEST_F(CsvTest, RaggedRowNamesFileAndLine) {
  absl::StatusOr<Dataset> ds = Load("1,2,0\n3,4,1\n5,1\n", CsvOptions{});
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()),
              HasSubstr(path_ + ":3: has 2 columns, expected 3"));
}

TEST_F(CsvTest, NonNumericValueNamesFileLineAndColumn) {
  CsvOptions o;
  o.header = true;
  absl::StatusOr<Dataset> ds = Load("a,b,c\n1,2,0\n3,abc,1\n", o);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()),
              HasSubstr(path_ + ":3: column 2 is not a number: \"abc\""));
}

TEST_F(CsvTest, EmptyAndNonFiniteFieldsAreNotNumbers) {
  absl::StatusOr<Dataset> ds = Load("1,,0\n", CsvOptions{});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(path_ + ":1: column 2"));
  ds = Load("1,2,0\nnan,2,0\n", CsvOptions{});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(path_ + ":2: column 1"));
}

TEST_F(CsvTest, NonIntegerLabelWithoutRegression) {
  absl::StatusOr<Dataset> ds = Load("1,2,0\n3,4,0.5\n", CsvOptions{});
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()),
              AllOf(HasSubstr(path_ + ":2: label \"0.5\" is not a class index"),
                    HasSubstr("csv.regression")));
}

TEST_F(CsvTest, NegativeLabelWithoutRegression) {
  absl::StatusOr<Dataset> ds = Load("1,2,-1\n", CsvOptions{});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()),
              HasSubstr(path_ + ":1: label \"-1\" is not a class index"));
}

TEST_F(CsvTest, RegressionTargets) {
  CsvOptions o;
  o.regression = true;
  absl::StatusOr<Dataset> ds = Load("1,2,0.25\n3,4,-7.5\n", o);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_FALSE(ds->classification());
  EXPECT_EQ(ds->num_classes, 0);
  EXPECT_EQ(ds->target_dim, 1);
  EXPECT_THAT(ds->targets, ElementsAre(0.25f, -7.5f));
  EXPECT_TRUE(ds->labels.empty());
  EXPECT_THAT(ds->f32, ElementsAre(1, 2, 3, 4));
}

TEST_F(CsvTest, TooFewColumnsAndNoRows) {
  absl::StatusOr<Dataset> ds = Load("1\n2\n", CsvOptions{});
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()),
              HasSubstr(path_ + ":1: needs at least 2 columns (features and a label), has 1"));
  CsvOptions o;
  o.header = true;
  ds = Load("a,b\n", o);
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(path_ + ": has no data rows"));
}

TEST_F(CsvTest, MissingFileIsNotFound) {
  const std::string missing = dir_ + "/missing.csv";
  absl::StatusOr<Dataset> ds = LoadCsv(missing, CsvOptions{});
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(missing));
}

// ---------------------------------------------------------------------------------------------
// Builtins

void ExpectTruthTable(const std::string& name, const std::vector<int>& outputs) {
  SCOPED_TRACE(name);
  absl::StatusOr<Dataset> ds = LoadBuiltin(name, BuiltinOptions{});
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_TRUE(IsBuiltin(name));
  EXPECT_FALSE(BuiltinHasTestSplit(name));
  EXPECT_EQ(ds->name, "builtin " + name);
  EXPECT_EQ(ds->count, 4);
  EXPECT_THAT(ds->shape, ElementsAre(2));
  EXPECT_THAT(ds->f32, ElementsAre(0, 0, 0, 1, 1, 0, 1, 1));
  EXPECT_THAT(ds->labels, ElementsAreArray(outputs));
  EXPECT_EQ(ds->num_classes, 2);
}

TEST(BuiltinTest, TruthTables) {
  ExpectTruthTable("and", {0, 0, 0, 1});
  ExpectTruthTable("or", {0, 1, 1, 1});
  ExpectTruthTable("xor", {0, 1, 1, 0});
}

TEST(BuiltinTest, UnknownNameListsKnownOnes) {
  EXPECT_FALSE(IsBuiltin("mnist"));
  absl::StatusOr<Dataset> ds = LoadBuiltin("mnist", BuiltinOptions{});
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()),
              AllOf(HasSubstr("\"mnist\""), HasSubstr("fashion-mnist, and, or, xor, adding")));
}

TEST(BuiltinTest, AddingProblemTargetsAreTheSumOfTheMarkedValues) {
  BuiltinOptions o;
  o.sequence_length = 6;
  o.examples = 20;
  absl::StatusOr<Dataset> ds = LoadBuiltin("adding", o);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_THAT(ds->shape, ElementsAre(6, 2));
  EXPECT_EQ(ds->count, 20);
  EXPECT_EQ(ds->target_dim, 1);
  EXPECT_FALSE(ds->classification());
  for (int64_t e = 0; e < ds->count; ++e) {
    const float* x = ds->f32.data() + e * 12;
    float sum = 0;
    int marked_first_half = 0, marked_second_half = 0;
    for (int t = 0; t < 6; ++t) {
      if (x[2 * t + 1] == 1.0f) {
        sum += x[2 * t];
        ++(t < 3 ? marked_first_half : marked_second_half);
      }
    }
    EXPECT_EQ(marked_first_half, 1) << "example " << e;
    EXPECT_EQ(marked_second_half, 1) << "example " << e;
    EXPECT_FLOAT_EQ(ds->targets[e], sum) << "example " << e;
  }
  o.test_split = true;
  absl::StatusOr<Dataset> test = LoadBuiltin("adding", o);
  ASSERT_TRUE(test.ok());
  EXPECT_EQ(test->count, 4);  // a fifth of the training examples
  EXPECT_NE(test->f32, std::vector<float>(ds->f32.begin(), ds->f32.begin() + 4 * 12));

  o.sequence_length = 1;
  EXPECT_THAT(std::string(LoadBuiltin("adding", o).status().message()),
              HasSubstr("sequence_length must be >= 2, got 1"));
}

// Sets an environment variable for the scope, restoring the old value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(BuiltinTest, FashionMnistFromTheDebianPackage) {
  if (std::ifstream(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz").fail()) {
    GTEST_SKIP() << kFashionMnistDir << " is missing (install dataset-fashion-mnist)";
  }
  ScopedEnv env("CAJAL_DATA_DIR", "");  // empty: the default directory
  EXPECT_TRUE(IsBuiltin("fashion-mnist"));
  EXPECT_TRUE(BuiltinHasTestSplit("fashion-mnist"));
  absl::StatusOr<Dataset> train = LoadBuiltin("fashion-mnist", BuiltinOptions{});
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->name, "builtin fashion-mnist");
  EXPECT_EQ(train->count, 60000);
  EXPECT_THAT(train->shape, ElementsAre(1, 28, 28));
  EXPECT_EQ(train->num_classes, 10);
  EXPECT_EQ(train->u8.size(), 60000u * 784u);
  BuiltinOptions o;
  o.test_split = true;
  absl::StatusOr<Dataset> test = LoadBuiltin("fashion-mnist", o);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->count, 10000);
  EXPECT_EQ(test->num_classes, 10);
}

TEST(BuiltinTest, FashionMnistRespectsCajalDataDir) {
  const std::string dir = MakeTempDir();
  WriteGzip(dir + "/train-images-idx3-ubyte.gz", Images());
  WriteGzip(dir + "/train-labels-idx1-ubyte.gz", Labels());
  WriteGzip(dir + "/t10k-images-idx3-ubyte.gz", Idx({1, 2, 4}, std::vector<uint8_t>(8, 7)));
  WriteGzip(dir + "/t10k-labels-idx1-ubyte.gz", Idx({1}, {1}));
  ScopedEnv env("CAJAL_DATA_DIR", dir);
  absl::StatusOr<Dataset> train = LoadBuiltin("fashion-mnist", BuiltinOptions{});
  ASSERT_TRUE(train.ok()) << train.status();
  ExpectTinyImages(*train);
  EXPECT_EQ(train->name, "builtin fashion-mnist");
  BuiltinOptions o;
  o.test_split = true;
  absl::StatusOr<Dataset> test = LoadBuiltin("fashion-mnist", o);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->count, 1);
  EXPECT_THAT(test->labels, ElementsAre(1));
}

TEST(BuiltinTest, FashionMnistMissingSaysHowToGetIt) {
  const std::string dir = MakeTempDir();  // empty
  ScopedEnv env("CAJAL_DATA_DIR", dir);
  absl::StatusOr<Dataset> ds = LoadBuiltin("fashion-mnist", BuiltinOptions{});
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(ds.status().message()),
              AllOf(HasSubstr(dir + "/train-images-idx3-ubyte.gz"), HasSubstr("CAJAL_DATA_DIR"),
                    HasSubstr("dataset-fashion-mnist")));
}

// ---------------------------------------------------------------------------------------------
// Normalization and batches

Dataset FloatData(const Shape& shape, std::vector<float> values, std::vector<int32_t> labels) {
  Dataset ds;
  ds.name = "test data";
  ds.shape = shape;
  ds.count = static_cast<int64_t>(labels.size());
  ds.f32 = std::move(values);
  ds.labels = std::move(labels);
  ds.num_classes = 3;
  return ds;
}

TEST(NormalizationTest, NoneIsTheIdentity) {
  const Dataset ds = FloatData({2}, {1, -2, 3, 4}, {0, 1});
  const Normalization n = FitNormalization(NormalizeKind::kNone, ds, {0, 1});
  EXPECT_THAT(n.shift, ElementsAre(0, 0));
  EXPECT_THAT(n.scale, ElementsAre(1, 1));
  std::vector<float> x(4);
  const int64_t idx[] = {0, 1};
  GatherBatch(ds, n, idx, 2, x.data(), nullptr, nullptr);
  EXPECT_THAT(x, ElementsAre(1, -2, 3, 4));
}

TEST(NormalizationTest, ScaleDividesBytesBy255) {
  Dataset ds;
  ds.shape = {1, 1, 3};
  ds.count = 2;
  ds.u8 = {0, 51, 255, 102, 204, 255};
  ds.labels = {1, 0};
  ds.num_classes = 2;
  const Normalization n = FitNormalization(NormalizeKind::kScale, ds, {0});
  EXPECT_THAT(n.scale, ElementsAre(FloatNear(1.0f / 255, 1e-9f)));
  std::vector<float> x(6);
  std::vector<int32_t> labels(2, -1);
  const int64_t idx[] = {1, 0};
  GatherBatch(ds, n, idx, 2, x.data(), labels.data(), nullptr);
  EXPECT_THAT(x, Pointwise(FloatNear(1e-6f), std::vector<float>{0.4f, 0.8f, 1, 0, 0.2f, 1}));
  EXPECT_THAT(labels, ElementsAre(0, 1));
}

TEST(NormalizationTest, ScaleDividesFloatsByTheTrainingMaxAbs) {
  // Example 2 is held out; its 100 must not set the scale.
  const Dataset ds = FloatData({2}, {1, -4, 2, 3, 100, 0}, {0, 1, 2});
  const Normalization n = FitNormalization(NormalizeKind::kScale, ds, {0, 1});
  EXPECT_THAT(n.scale, ElementsAre(0.25f, 0.25f));
  EXPECT_THAT(n.shift, ElementsAre(0, 0));
  std::vector<float> x(6);
  const int64_t idx[] = {0, 1, 2};
  GatherBatch(ds, n, idx, 3, x.data(), nullptr, nullptr);
  EXPECT_THAT(x, ElementsAre(0.25f, -1, 0.5f, 0.75f, 25, 0));
}

TEST(NormalizationTest, ScaleOfAllZeroFloatsIsOne) {
  const Dataset ds = FloatData({2}, {0, 0}, {0});
  EXPECT_THAT(FitNormalization(NormalizeKind::kScale, ds, {0}).scale, ElementsAre(1, 1));
}

TEST(NormalizationTest, StandardizeImagesPerChannelFromTrainingIndicesOnly) {
  // Two channels of 1x2 pixels. Channel 0 of examples 0, 1: {1, 3, 5, 7} → mean 4, var 5.
  // Channel 1: {10, 10, 30, 30} → mean 20, var 100. Example 2 (held out) is huge.
  const Dataset ds = FloatData({2, 1, 2},
                               {1, 3, 10, 10,  //
                                5, 7, 30, 30,  //
                                1000, -1000, 5000, 5000},
                               {0, 1, 2});
  const Normalization n = FitNormalization(NormalizeKind::kStandardize, ds, {0, 1});
  EXPECT_EQ(n.channel_stride, 2);
  EXPECT_THAT(n.shift, ElementsAre(4, 20));
  EXPECT_THAT(n.scale,
              Pointwise(FloatNear(1e-6f), std::vector<float>{1 / std::sqrt(5.0f), 1 / 10.0f}));
  // The held-out example changes nothing: same statistics with it in the data set or not.
  Dataset without = ds;
  without.count = 2;
  without.f32.resize(8);
  without.labels.resize(2);
  const Normalization m = FitNormalization(NormalizeKind::kStandardize, without, {0, 1});
  EXPECT_EQ(m.shift, n.shift);
  EXPECT_EQ(m.scale, n.scale);
  // Including it does change them, so the test above can fail.
  const Normalization all = FitNormalization(NormalizeKind::kStandardize, ds, {0, 1, 2});
  EXPECT_NE(all.shift, n.shift);

  std::vector<float> x(8);
  const int64_t idx[] = {1, 0};
  GatherBatch(ds, n, idx, 2, x.data(), nullptr, nullptr);
  const float s = 1 / std::sqrt(5.0f);
  EXPECT_THAT(x, Pointwise(FloatNear(1e-5f),
                           std::vector<float>{1 * s, 3 * s, 1, 1, -3 * s, -1 * s, -1, -1}));
}

TEST(NormalizationTest, StandardizeFlatFeaturesAndSequencesPerFeature) {
  // (T=2, F=2) sequences: feature 0 is {1, 3, 5, 7}, feature 1 is {2, 2, 2, 2} (constant).
  const Dataset ds = FloatData({2, 2}, {1, 2, 3, 2, 5, 2, 7, 2}, {0, 1});
  const Normalization n = FitNormalization(NormalizeKind::kStandardize, ds, {0, 1});
  EXPECT_EQ(n.channel_stride, 1);
  EXPECT_THAT(n.shift, ElementsAre(4, 2));
  // A constant feature keeps unit scale instead of dividing by zero.
  EXPECT_THAT(n.scale, Pointwise(FloatNear(1e-6f), std::vector<float>{1 / std::sqrt(5.0f), 1}));
  std::vector<float> x(4);
  const int64_t idx[] = {0};
  GatherBatch(ds, n, idx, 1, x.data(), nullptr, nullptr);
  const float s = 1 / std::sqrt(5.0f);
  EXPECT_THAT(x, Pointwise(FloatNear(1e-5f), std::vector<float>{-3 * s, 0, -1 * s, 0}));
}

TEST(NormalizationTest, StandardizeBytes) {
  Dataset ds;
  ds.shape = {1, 1, 2};
  ds.count = 2;
  ds.u8 = {0, 100, 200, 100};
  ds.labels = {0, 1};
  ds.num_classes = 2;
  const Normalization n = FitNormalization(NormalizeKind::kStandardize, ds, {0, 1});
  // {0, 100, 200, 100}: mean 100, variance 5000.
  EXPECT_THAT(n.shift, ElementsAre(100));
  EXPECT_THAT(n.scale, ElementsAre(FloatNear(1 / std::sqrt(5000.0f), 1e-7f)));
}

TEST(GatherBatchTest, CopiesRegressionTargetsAndLeavesLabelsAlone) {
  Dataset ds;
  ds.shape = {1};
  ds.count = 3;
  ds.f32 = {1, 2, 3};
  ds.target_dim = 2;
  ds.targets = {10, 11, 20, 21, 30, 31};
  const Normalization n = FitNormalization(NormalizeKind::kNone, ds, {0, 1, 2});
  std::vector<float> x(2), targets(4);
  std::vector<int32_t> labels(2, -7);
  const int64_t idx[] = {2, 0};
  GatherBatch(ds, n, idx, 2, x.data(), labels.data(), targets.data());
  EXPECT_THAT(x, ElementsAre(3, 1));
  EXPECT_THAT(targets, ElementsAre(30, 31, 10, 11));
  EXPECT_THAT(labels, ElementsAre(-7, -7));
}

TEST(ReshapeTest, KeepsElementCountOrExplains) {
  Dataset ds = FloatData({12}, std::vector<float>(12), {0});
  ASSERT_TRUE(Reshape({3, 2, 2}, &ds).ok());
  EXPECT_THAT(ds.shape, ElementsAre(3, 2, 2));
  absl::Status s = Reshape({5, 2}, &ds);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("shape (5, 2) has 10 elements but test data has 12 features per example"));
  s = Reshape({1, 1, 2, 6}, &ds);
  EXPECT_THAT(std::string(s.message()), HasSubstr("1 to 3 positive dimensions"));
  s = Reshape({0, 12}, &ds);
  EXPECT_THAT(std::string(s.message()), HasSubstr("1 to 3 positive dimensions"));
  EXPECT_THAT(ds.shape, ElementsAre(3, 2, 2));
}

}  // namespace
}  // namespace cajal
