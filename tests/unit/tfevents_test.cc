// The event writer checked by an independent reader (tests/tools/read_tfevents.py: Python's
// protobuf with its own transcription of TensorFlow's schema, and python3-crc32c), and
// `cajal train --tfevents_dir` end to end.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/tfevents/event_observer.h"
#include "service/tfevents/event_writer.h"

namespace cajal {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct CommandResult {
  int exit_code = -1;
  std::vector<std::string> lines;  // stdout
};

CommandResult RunCommand(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    r.lines.emplace_back(line);
  }
  return r;
}

CommandResult ReadEvents(const std::string& path) {
  return RunCommand(absl::StrCat("/usr/bin/python3 ", CAJAL_SOURCE_DIR,
                                 "/tests/tools/read_tfevents.py '", path, "'"));
}

std::string MakeTempDir() {
  std::string tmpl = ::testing::TempDir() + "tfevents_XXXXXX";
  char* dir = ::mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr) << tmpl;
  return tmpl;
}

std::string Hostname() {
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  return name;
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

std::string Basename(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::string Scalar(int index, int64_t step, const std::string& tag, const std::string& value,
                   const std::string& wall_time) {
  return absl::StrCat("scalar index=", index, " step=", step, " tag=", tag, " value=", value,
                      " form=tensor plugin=scalars data_class=1 wall_time=", wall_time);
}

// A file with the version record and three scalar events; offsets[i] is where record i starts.
struct ThreeEvents {
  std::string dir, path;
  std::vector<int64_t> offsets;
};

ThreeEvents WriteThreeEvents() {
  ThreeEvents t;
  t.dir = MakeTempDir();
  absl::StatusOr<std::unique_ptr<EventWriter>> w = EventWriter::Create(t.dir);
  EXPECT_TRUE(w.ok()) << w.status();
  t.path = (*w)->path();
  t.offsets.push_back(0);
  for (int i = 1; i <= 3; ++i) {
    t.offsets.push_back(FileSize(t.path));
    EXPECT_TRUE(
        (*w)->WriteScalars(/*step=*/i * 10, /*wall_time=*/1000.0 + i, {{"loss", 1.0 / (1 << i)}})
            .ok());
  }
  t.offsets.push_back(FileSize(t.path));  // the end
  return t;
}

TEST(EventWriterTest, FrameIsLengthCrcDataCrc) {
  // Length 3 little-endian, masked CRC-32C of those 8 bytes (0x0E4999B0), "abc", masked CRC-32C
  // of "abc" (0x21F1576E); CRC values from python3-crc32c.
  const std::string expected(
      "\x03\x00\x00\x00\x00\x00\x00\x00"
      "\xB0\x99\x49\x0E"
      "abc"
      "\x6E\x57\xF1\x21",
      19);
  EXPECT_EQ(EventWriter::Frame("abc"), expected);
}

TEST(EventWriterTest, IndependentReaderVerifiesEveryRecordAndFindsTheScalars) {
  const std::string dir = MakeTempDir() + "/runs/trial-1";  // parents created too
  const int64_t before = std::time(nullptr);
  absl::StatusOr<std::unique_ptr<EventWriter>> w = EventWriter::Create(dir);
  ASSERT_TRUE(w.ok()) << w.status();
  const int64_t after = std::time(nullptr);
  ASSERT_TRUE((*w)->WriteScalars(/*step=*/10, /*wall_time=*/1700000000.25,
                                 {{"loss", 0.5}, {"accuracy", 0.75}})
                  .ok());
  ASSERT_TRUE((*w)->WriteScalars(/*step=*/20, /*wall_time=*/1700000001.5,
                                 {{"loss", 0.125}, {"val_loss", 2.0 / 3.0}})
                  .ok());

  // events.out.tfevents.<unix seconds>.<hostname>, created now.
  const std::string prefix = dir + "/events.out.tfevents.";
  ASSERT_THAT((*w)->path(), StartsWith(prefix));
  const std::string rest = (*w)->path().substr(prefix.size());
  const int64_t seconds = std::strtoll(rest.c_str(), nullptr, 10);
  EXPECT_GE(seconds, before);
  EXPECT_LE(seconds, after);
  EXPECT_EQ(rest, absl::StrCat(seconds, ".", Hostname()));

  // Read while the writer is still open: every record is already in the file.
  const CommandResult r = ReadEvents(dir);
  EXPECT_EQ(r.exit_code, 0);
  ASSERT_EQ(r.lines.size(), 7u) << absl::StrJoin(r.lines, "\n");
  EXPECT_EQ(r.lines[0], "file " + Basename((*w)->path()));
  const std::regex version(R"(version index=0 wall_time=([0-9.]+) file_version=brain\.Event:2)");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(r.lines[1], m, version)) << r.lines[1];
  EXPECT_GE(std::stod(m[1]), static_cast<double>(before));
  EXPECT_LE(std::stod(m[1]), static_cast<double>(after + 1));
  EXPECT_EQ(r.lines[2], Scalar(1, 10, "loss", "0.5", "1700000000.250000"));
  EXPECT_EQ(r.lines[3], Scalar(1, 10, "accuracy", "0.75", "1700000000.250000"));
  EXPECT_EQ(r.lines[4], Scalar(2, 20, "loss", "0.125", "1700000001.500000"));
  EXPECT_EQ(r.lines[5], Scalar(2, 20, "val_loss", "0.666666687", "1700000001.500000"));
  EXPECT_EQ(r.lines[6], "end records=3");
}

TEST(EventWriterTest, NeverOverwritesAnExistingFile) {
  const std::string dir = MakeTempDir();
  // Occupy the names of this second and the next two, so Create must take a suffixed name.
  const int64_t now = std::time(nullptr);
  for (int64_t s = now; s <= now + 2; ++s) {
    WriteAll(absl::StrCat(dir, "/events.out.tfevents.", s, ".", Hostname()), "taken");
  }
  absl::StatusOr<std::unique_ptr<EventWriter>> w = EventWriter::Create(dir);
  ASSERT_TRUE(w.ok()) << w.status();
  const std::string plain = (*w)->path().substr(0, (*w)->path().size() - 2);  // without ".1"
  EXPECT_EQ((*w)->path(), plain + ".1");
  EXPECT_EQ(ReadAll(plain), "taken");
  EXPECT_GT(FileSize((*w)->path()), 16);
}

TEST(EventWriterTest, CreateFailsWithTheDirectoryNamedWhenItIsAFile) {
  const std::string file = MakeTempDir() + "/not-a-dir";
  WriteAll(file, "x");
  absl::StatusOr<std::unique_ptr<EventWriter>> w = EventWriter::Create(file + "/runs");
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition) << w.status();
  EXPECT_THAT(w.status().message(), HasSubstr(file + "/runs"));

  w = EventWriter::Create("");
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument) << w.status();
}

TEST(EventWriterTest, TruncatedTrailingRecordIsReportedAndEarlierRecordsKept) {
  const ThreeEvents t = WriteThreeEvents();
  const std::string whole = ReadAll(t.path);
  ASSERT_EQ(static_cast<int64_t>(whole.size()), t.offsets[4]);
  const std::string loss1 = Scalar(1, 10, "loss", "0.5", "1001.000000");
  const std::string loss2 = Scalar(2, 20, "loss", "0.25", "1002.000000");

  // Killed after the last record's data, before its CRC was complete.
  WriteAll(t.path, whole.substr(0, whole.size() - 2));
  CommandResult r = ReadEvents(t.path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.lines, Contains(loss1));
  EXPECT_THAT(r.lines, Contains(loss2));
  EXPECT_THAT(r.lines, Contains(StartsWith(absl::StrCat("truncated index=3 offset=", t.offsets[3],
                                                        ": record of "))));
  EXPECT_THAT(r.lines, Not(Contains(HasSubstr("index=3 step=30"))));
  EXPECT_THAT(r.lines, Not(Contains(StartsWith("end "))));

  // Killed inside the last record's header.
  WriteAll(t.path, whole.substr(0, t.offsets[3] + 5));
  r = ReadEvents(t.path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.lines, Contains(loss2));
  EXPECT_THAT(r.lines, Contains(absl::StrCat("truncated index=3 offset=", t.offsets[3],
                                             ": 5 bytes left, a header needs 12")));

  // The intact file reads clean: the reader's verdicts above come from the cuts.
  WriteAll(t.path, whole);
  r = ReadEvents(t.path);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.lines, Contains(Scalar(3, 30, "loss", "0.125", "1003.000000")));
  EXPECT_THAT(r.lines, Contains("end records=4"));
}

TEST(EventWriterTest, CorruptedCrcsAreReported) {
  const ThreeEvents t = WriteThreeEvents();
  const std::string whole = ReadAll(t.path);
  const std::string loss1 = Scalar(1, 10, "loss", "0.5", "1001.000000");

  std::string bad = whole;
  bad[t.offsets[2] + 12 + 3] ^= 0x01;  // a byte of record 2's data
  WriteAll(t.path, bad);
  CommandResult r = ReadEvents(t.path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.lines, Contains(loss1));
  EXPECT_THAT(r.lines, Contains(StartsWith(absl::StrCat("corrupt index=2 offset=", t.offsets[2],
                                                        ": data crc stored 0x"))));
  EXPECT_THAT(r.lines, Not(Contains(HasSubstr("step=20"))));

  bad = whole;
  bad[t.offsets[2] + 9] ^= 0x40;  // record 2's length CRC
  WriteAll(t.path, bad);
  r = ReadEvents(t.path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.lines, Contains(loss1));
  EXPECT_THAT(r.lines, Contains(StartsWith(absl::StrCat("corrupt index=2 offset=", t.offsets[2],
                                                        ": length crc stored 0x"))));
}

class RecordingObserver : public TrainObserver {
 public:
  bool OnStep(const StepReport& s) override {
    steps.push_back(s.step);
    return s.step != stop_at;
  }
  void OnEpoch(const EpochReport& e) override { epochs.push_back(e.epoch); }
  int64_t stop_at = -1;
  std::vector<int64_t> steps;
  std::vector<int> epochs;
};

TEST(EventFileObserverTest, WritesEpochAndStepScalarsAndForwards) {
  const std::string dir = MakeTempDir();
  absl::StatusOr<std::unique_ptr<EventWriter>> w = EventWriter::Create(dir);
  ASSERT_TRUE(w.ok()) << w.status();
  RecordingObserver next;
  next.stop_at = 3;
  EventFileObserver classify(w->get(), /*classification=*/true, /*every_steps=*/2, &next);
  std::vector<bool> go_on;
  for (int64_t step = 1; step <= 4; ++step) {
    StepReport s;
    s.epoch = 1;
    s.step = step;
    s.loss = 0.25 * step;
    go_on.push_back(classify.OnStep(s));
  }
  EpochReport e;
  e.epoch = 1;
  e.step = 4;
  e.loss = 0.5;
  e.accuracy = 0.25;
  e.has_val = true;
  e.val_loss = 1.5;
  e.val_accuracy = 0.125;
  classify.OnEpoch(e);
  EXPECT_TRUE(classify.status().ok()) << classify.status();
  EXPECT_THAT(go_on, ElementsAre(true, true, false, true));  // the next observer's answers
  EXPECT_THAT(next.steps, ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(next.epochs, ElementsAre(1));

  // Regression: no accuracy; no next observer; epochs only.
  EventFileObserver regress(w->get(), /*classification=*/false, /*every_steps=*/0, nullptr);
  StepReport s;
  s.step = 5;
  s.loss = 9;
  EXPECT_TRUE(regress.OnStep(s));
  e.epoch = 2;
  e.step = 8;
  regress.OnEpoch(e);
  e.has_val = false;
  e.epoch = 3;
  e.step = 12;
  e.loss = 0.0625;
  regress.OnEpoch(e);

  const CommandResult r = ReadEvents(dir);
  EXPECT_EQ(r.exit_code, 0);
  std::vector<std::string> scalars;
  for (const std::string& line : r.lines) {
    if (line.rfind("scalar ", 0) == 0) scalars.push_back(line.substr(0, line.find(" form=")));
  }
  EXPECT_THAT(scalars, ElementsAre("scalar index=1 step=2 tag=step_loss value=0.5",
                                   "scalar index=2 step=4 tag=step_loss value=1",
                                   "scalar index=3 step=4 tag=loss value=0.5",
                                   "scalar index=3 step=4 tag=accuracy value=0.25",
                                   "scalar index=3 step=4 tag=val_loss value=1.5",
                                   "scalar index=3 step=4 tag=val_accuracy value=0.125",
                                   "scalar index=4 step=8 tag=loss value=0.5",
                                   "scalar index=4 step=8 tag=val_loss value=1.5",
                                   "scalar index=5 step=12 tag=loss value=0.0625"));
  EXPECT_THAT(r.lines, Contains("end records=6"));
}

// `cajal train --tfevents_dir` on the builtin xor set: 4 examples, batch 4, so epoch k ends at
// global step k.
TEST(CajalTrainTfeventsTest, EventFileHoldsTheEpochLinesValues) {
  const std::string cajal = absl::StrCat(CAJAL_BINARY_DIR, "/bin/cajal");
  ASSERT_EQ(::access(cajal.c_str(), X_OK), 0) << cajal << " is not built (ninja cajal)";
  const std::string dir = MakeTempDir();
  WriteAll(dir + "/xor.yaml",
           "model:\n"
           "  layers:\n"
           "    - dense: {units: 8}\n"
           "    - activation: {kind: tanh}\n"
           "    - dense: {units: 2}\n"
           "data:\n"
           "  train: {builtin: xor}\n"
           "optimizer: {kind: adam, learning_rate: 0.05}\n"
           "training: {epochs: 3, batch_size: 4, seed: 1, threads: 1, loss: cross_entropy}\n");
  const CommandResult train =
      RunCommand(absl::StrCat(cajal, " train --spec ", dir, "/xor.yaml --out ", dir,
                              "/out --tfevents_dir ", dir, "/tb --tfevents_every_steps 1"));
  ASSERT_EQ(train.exit_code, 0) << absl::StrJoin(train.lines, "\n");

  // stdout: epoch=K loss=X accuracy=Y
  const std::regex epoch_line(R"(epoch=([0-9]+) loss=([0-9.]+) accuracy=([0-9.]+))");
  std::vector<std::pair<double, double>> printed;  // (loss, accuracy) of epochs 1, 2, 3
  for (const std::string& line : train.lines) {
    std::smatch m;
    if (!std::regex_match(line, m, epoch_line)) continue;
    EXPECT_EQ(std::stoi(m[1]), static_cast<int>(printed.size()) + 1) << line;
    printed.emplace_back(std::stod(m[2]), std::stod(m[3]));
  }
  ASSERT_EQ(printed.size(), 3u) << absl::StrJoin(train.lines, "\n");

  const CommandResult r = ReadEvents(dir + "/tb");
  EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(r.lines, "\n");
  EXPECT_THAT(r.lines, Contains(StartsWith("version index=0 ")));
  const std::regex scalar_line(R"(scalar index=[0-9]+ step=([0-9]+) tag=(\w+) value=(\S+) .*)");
  std::vector<std::pair<double, double>> logged(3, {-1, -1});
  std::vector<int64_t> step_loss_steps;
  for (const std::string& line : r.lines) {
    std::smatch m;
    if (!std::regex_match(line, m, scalar_line)) continue;
    const int64_t step = std::stoll(m[1]);
    const std::string tag = m[2];
    const double value = std::stod(m[3]);
    if (tag == "step_loss") {
      step_loss_steps.push_back(step);
      continue;
    }
    ASSERT_TRUE(step >= 1 && step <= 3) << line;
    if (tag == "loss")
      logged[step - 1].first = value;
    else if (tag == "accuracy")
      logged[step - 1].second = value;
    else
      ADD_FAILURE() << "unexpected tag: " << line;
  }
  EXPECT_THAT(step_loss_steps, ElementsAre(1, 2, 3));
  for (int k = 0; k < 3; ++k) {
    // stdout prints 4 decimals; the event file holds the float32 value.
    EXPECT_NEAR(logged[k].first, printed[k].first, 0.5e-4 + 1e-6) << "epoch " << k + 1;
    EXPECT_NEAR(logged[k].second, printed[k].second, 0.5e-4 + 1e-6) << "epoch " << k + 1;
  }
}

TEST(CajalTrainTfeventsTest, BadTfeventsArgumentsExitTwo) {
  const std::string cajal = absl::StrCat(CAJAL_BINARY_DIR, "/bin/cajal");
  ASSERT_EQ(::access(cajal.c_str(), X_OK), 0) << cajal << " is not built (ninja cajal)";
  const std::string dir = MakeTempDir();
  WriteAll(dir + "/xor.yaml",
           "model: {layers: [{dense: {units: 2}}]}\n"
           "data: {train: {builtin: xor}}\n"
           "training: {epochs: 1, batch_size: 4}\n");
  WriteAll(dir + "/file", "x");
  CommandResult r = RunCommand(absl::StrCat(cajal, " train --spec ", dir, "/xor.yaml --out ", dir,
                                            "/out --tfevents_dir ", dir, "/file/tb 2>&1"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.lines, Contains(AllOf(HasSubstr(dir + "/file/tb"), HasSubstr("cajal: "))));
  r = RunCommand(absl::StrCat(cajal, " train --spec ", dir, "/xor.yaml --out ", dir,
                              "/out --tfevents_dir ", dir, "/tb --tfevents_every_steps -1 2>&1"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.lines, Contains(HasSubstr("--tfevents_every_steps")));
}

}  // namespace
}  // namespace cajal
