// Runs the real `cajal train` binary on a spec from examples/ and returns what it printed, for
// the slow accuracy tests that check the README's and DESIGN.md's examples end to end.
#ifndef CAJAL_TESTS_SLOW_CAJAL_TRAIN_H_
#define CAJAL_TESTS_SLOW_CAJAL_TRAIN_H_

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace cajal {

inline constexpr char kFashionMnistTrain[] =
    "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

// `cajal train --spec examples/<example> --out <fresh temp dir> <extra>`, stderr joined to
// stdout (so a failure shows its message). The output is echoed for the test log. Fails the
// test (the caller checks HasFatalFailure) unless the command exits 0.
inline std::vector<std::string> CajalTrain(const std::string& example,
                                           const std::string& extra = "") {
  // $CAJAL_BINARY_DIR and $CAJAL_SOURCE_DIR override the build's own paths, for binaries run
  // on another machine (scripts/gpu-check.sh --prebuilt).
  const char* bin_env = std::getenv("CAJAL_BINARY_DIR");
  const char* src_env = std::getenv("CAJAL_SOURCE_DIR");
  const std::string cajal = std::string(bin_env ? bin_env : CAJAL_BINARY_DIR) + "/bin/cajal";
  const std::string spec =
      std::string(src_env ? src_env : CAJAL_SOURCE_DIR) + "/examples/" + example;
  EXPECT_EQ(::access(cajal.c_str(), X_OK), 0) << cajal << " is missing";
  std::string dir = ::testing::TempDir() + "/cajal_slow_XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << dir;
    return {};
  }
  const std::string command =
      cajal + " train --spec " + spec + " --out " + dir + " " + extra + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "popen " << command;
    return {};
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = ::pclose(pipe);
  std::cout << out;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command << "\n" << out;
  return absl::StrSplit(out, '\n', absl::SkipEmpty());
}

// The test accuracy of `cajal train`'s final line for a 5-epoch Fashion-MNIST run (4,690 steps
// of batch 64), or −1 after a test failure naming the line.
inline double FinalTestAccuracy(const std::vector<std::string>& lines) {
  if (lines.size() != 6u) {
    ADD_FAILURE() << "5 epoch lines and the final line expected, got " << lines.size();
    return -1;
  }
  std::smatch m;
  if (!std::regex_match(
          lines[5], m,
          std::regex(R"(test_loss=\d+\.\d{4} test_accuracy=(\d\.\d{4}) steps=4690 .*)"))) {
    ADD_FAILURE() << "unexpected final line: " << lines[5];
    return -1;
  }
  return std::stod(m[1]);
}

}  // namespace cajal

#endif  // CAJAL_TESTS_SLOW_CAJAL_TRAIN_H_
