#include "core/util/status_macros.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd: " + std::to_string(x));
  return x / 2;
}

absl::Status Check(int x, int* calls) {
  ++*calls;
  if (x < 0) return absl::OutOfRangeError("negative");
  return absl::OkStatus();
}

absl::Status TwoChecks(int a, int b, int* calls) {
  RETURN_IF_ERROR(Check(a, calls));
  RETURN_IF_ERROR(Check(b, calls));
  return absl::OkStatus();
}

absl::StatusOr<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int half, Half(x));
  ASSIGN_OR_RETURN(const int quarter, Half(half));
  return quarter;
}

absl::StatusOr<std::string> AssignExisting(int x) {
  int value = -1;
  ASSIGN_OR_RETURN(value, Half(x));
  return std::to_string(value);
}

TEST(StatusMacrosTest, ReturnIfErrorPassesOkThrough) {
  int calls = 0;
  EXPECT_TRUE(TwoChecks(1, 2, &calls).ok());
  EXPECT_EQ(calls, 2);
}

TEST(StatusMacrosTest, ReturnIfErrorStopsAtFirstErrorAndKeepsIt) {
  int calls = 0;
  const absl::Status s = TwoChecks(-1, 2, &calls);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(s.message(), "negative");
  EXPECT_EQ(calls, 1) << "the second check must not run";
}

TEST(StatusMacrosTest, AssignOrReturnUnwrapsValues) {
  ASSERT_TRUE(Quarter(12).ok());
  EXPECT_EQ(*Quarter(12), 3);
  EXPECT_EQ(*AssignExisting(8), "4");
}

TEST(StatusMacrosTest, AssignOrReturnPropagatesTheError) {
  const absl::StatusOr<int> r = Quarter(6);  // 6 -> 3, then 3 is odd
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("odd: 3"));
  EXPECT_EQ(AssignExisting(5).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cajal
