// Path confinement (issue 22): every case runs with both mechanisms, openat2(RESOLVE_BENEATH) and
// the /proc/self/fd check that stands in for it on kernels without openat2.
#include "service/server/data_roots.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/data_files.h"

namespace cajal {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_files::MakeTempDir;
using testing_files::ReadRaw;
using testing_files::WriteRaw;
using Mechanism = DataRoots::Mechanism;

constexpr char kField[] = "data.train.csv.path";

// A relative path from directory `from` to the absolute path `to`, through "/": as many ".."
// as `from` has components, then `to`.
std::string Through(const std::string& from, const std::string& to) {
  std::string up;
  for (char c : from) {
    if (c == '/') up += "../";
  }
  return up + to.substr(1);
}

class DataRootsTest : public ::testing::TestWithParam<Mechanism> {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(root_ + "/sub");
    WriteRaw(root_ + "/a.csv", "1,2,0\n");
    WriteRaw(root_ + "/sub/b.csv", "3,4,1\n");
    WriteRaw(outside_ + "/secret.csv", "db_password,hunter2secret\n");
    absl::StatusOr<std::unique_ptr<DataRoots>> roots = DataRoots::Create({root_}, GetParam());
    ASSERT_TRUE(roots.ok()) << roots.status();
    roots_ = *std::move(roots);
  }

  // The content of the file `path` opens, read through the descriptor's /proc path.
  std::string Read(const std::string& path) {
    absl::StatusOr<OpenFile> f = roots_->Open(kField, path);
    EXPECT_TRUE(f.ok()) << f.status();
    return f.ok() ? ReadRaw(f->proc_path()) : "";
  }

  void ExpectRefused(const std::string& path, absl::StatusCode code, const std::string& what) {
    absl::StatusOr<OpenFile> f = roots_->Open(kField, path);
    ASSERT_FALSE(f.ok()) << path;
    EXPECT_EQ(f.status().code(), code) << f.status();
    EXPECT_THAT(std::string(f.status().message()),
                AllOf(HasSubstr(std::string(kField) + ": "), HasSubstr(what),
                      ::testing::Not(HasSubstr("hunter2"))));
  }

  std::string base_ = MakeTempDir();
  std::string root_ = base_ + "/root";
  std::string outside_ = MakeTempDir();
  std::unique_ptr<DataRoots> roots_;
};

TEST_P(DataRootsTest, UsesTheMechanismAskedFor) { EXPECT_EQ(roots_->mechanism(), GetParam()); }

TEST_P(DataRootsTest, OpensFilesBeneathTheRoot) {
  EXPECT_EQ(Read(root_ + "/a.csv"), "1,2,0\n");
  EXPECT_EQ(Read(root_ + "/sub/b.csv"), "3,4,1\n");
  EXPECT_EQ(Read(root_ + "//sub/./b.csv"), "3,4,1\n");
  EXPECT_EQ(Read("sub/b.csv"), "3,4,1\n");              // relative: beneath the root
  EXPECT_EQ(Read(root_ + "/sub/../a.csv"), "1,2,0\n");  // .. that stays inside
}

TEST_P(DataRootsTest, PathOutsideEveryRootIsPermissionDeniedNamingTheRoots) {
  for (const std::string& path : {outside_ + "/secret.csv", std::string("/etc/passwd"),
                                  std::string("/no/such/file"), root_ + "2/a.csv"}) {
    ExpectRefused(path, absl::StatusCode::kPermissionDenied,
                  "is outside the server's data roots (" + root_ + ")");
  }
}

TEST_P(DataRootsTest, DotDotOutOfTheRootIsRefused) {
  const std::string rel = Through(root_, outside_ + "/secret.csv");
  ExpectRefused(root_ + "/" + rel, absl::StatusCode::kPermissionDenied, "leads outside");
  ExpectRefused(rel, absl::StatusCode::kPermissionDenied, "leads outside");
}

TEST_P(DataRootsTest, SymlinkOutOfTheRootIsRefused) {
  ASSERT_EQ(symlink((outside_ + "/secret.csv").c_str(), (root_ + "/link.csv").c_str()), 0);
  ASSERT_EQ(symlink(outside_.c_str(), (root_ + "/linkdir").c_str()), 0);
  ASSERT_EQ(
      symlink(Through(root_, outside_ + "/secret.csv").c_str(), (root_ + "/rel-link.csv").c_str()),
      0);
  ExpectRefused(root_ + "/link.csv", absl::StatusCode::kPermissionDenied, "leads outside");
  ExpectRefused(root_ + "/linkdir/secret.csv", absl::StatusCode::kPermissionDenied,
                "leads outside");
  ExpectRefused(root_ + "/rel-link.csv", absl::StatusCode::kPermissionDenied, "leads outside");
}

TEST_P(DataRootsTest, RelativeSymlinkInsideTheRootIsFollowed) {
  ASSERT_EQ(symlink("sub/b.csv", (root_ + "/inner-link.csv").c_str()), 0);
  EXPECT_EQ(Read(root_ + "/inner-link.csv"), "3,4,1\n");
}

TEST_P(DataRootsTest, MissingFileIsNotFound) {
  ExpectRefused(root_ + "/nope.csv", absl::StatusCode::kNotFound,
                "no such file under the data roots: " + root_ + "/nope.csv");
  ExpectRefused("nope.csv", absl::StatusCode::kNotFound, "no such file under the data roots");
}

TEST_P(DataRootsTest, OnlyRegularFilesAndAFifoDoesNotBlock) {
  ExpectRefused(root_ + "/sub", absl::StatusCode::kInvalidArgument, "is not a regular file");
  ExpectRefused(root_, absl::StatusCode::kInvalidArgument, "is not a regular file");
  ASSERT_EQ(mkfifo((root_ + "/fifo").c_str(), 0600), 0);
  ExpectRefused(root_ + "/fifo", absl::StatusCode::kInvalidArgument, "is not a regular file");
}

// The root named through a symbolic link (as a Kubernetes mount may be) accepts both spellings.
TEST_P(DataRootsTest, RootBehindASymlinkAcceptsBothSpellings) {
  const std::string alias = base_ + "/alias";
  ASSERT_EQ(symlink(root_.c_str(), alias.c_str()), 0);
  absl::StatusOr<std::unique_ptr<DataRoots>> roots = DataRoots::Create({alias}, GetParam());
  ASSERT_TRUE(roots.ok()) << roots.status();
  for (const std::string& path : {alias + "/a.csv", root_ + "/a.csv"}) {
    absl::StatusOr<OpenFile> f = (*roots)->Open(kField, path);
    ASSERT_TRUE(f.ok()) << path << ": " << f.status();
    EXPECT_EQ(ReadRaw(f->proc_path()), "1,2,0\n");
  }
}

// The descriptor is what is read: replacing the path with a link out of the root after the
// check changes nothing.
TEST_P(DataRootsTest, APathSwappedAfterOpeningIsNotFollowed) {
  absl::StatusOr<OpenFile> f = roots_->Open(kField, root_ + "/a.csv");
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(unlink((root_ + "/a.csv").c_str()), 0);
  ASSERT_EQ(symlink((outside_ + "/secret.csv").c_str(), (root_ + "/a.csv").c_str()), 0);
  EXPECT_EQ(ReadRaw(f->proc_path()), "1,2,0\n");
  ExpectRefused(root_ + "/a.csv", absl::StatusCode::kPermissionDenied, "leads outside");
}

TEST_P(DataRootsTest, SecondRootIsSearched) {
  absl::StatusOr<std::unique_ptr<DataRoots>> roots =
      DataRoots::Create({root_ + "/sub", outside_}, GetParam());
  ASSERT_TRUE(roots.ok()) << roots.status();
  absl::StatusOr<OpenFile> f = (*roots)->Open(kField, "secret.csv");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(ReadRaw(f->proc_path()), "db_password,hunter2secret\n");
  EXPECT_THAT((*roots)->dirs(), ::testing::ElementsAre(root_ + "/sub", outside_));
}

INSTANTIATE_TEST_SUITE_P(Mechanisms, DataRootsTest,
                         ::testing::Values(Mechanism::kOpenat2, Mechanism::kProcCheck),
                         [](const auto& info) {
                           return info.param == Mechanism::kOpenat2 ? "Openat2" : "ProcCheck";
                         });

TEST(DataRootsCreateTest, AMissingRootIsAnErrorNamingTheFlag) {
  absl::StatusOr<std::unique_ptr<DataRoots>> roots =
      DataRoots::Create({MakeTempDir() + "/missing"});
  ASSERT_FALSE(roots.ok());
  EXPECT_EQ(roots.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(roots.status().message()), HasSubstr("--data_roots: "));
}

TEST(DataRootsCreateTest, NoRootsRefuseEveryPath) {
  absl::StatusOr<std::unique_ptr<DataRoots>> roots = DataRoots::Create({});
  ASSERT_TRUE(roots.ok()) << roots.status();
  absl::StatusOr<OpenFile> f = (*roots)->Open(kField, "/etc/passwd");
  EXPECT_EQ(f.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("none configured"));
}

// This machine's kernel has openat2 (Linux >= 5.6); cajald picks it on its own.
TEST(DataRootsCreateTest, AutoPicksOpenat2WhereTheKernelHasIt) {
  absl::StatusOr<std::unique_ptr<DataRoots>> roots = DataRoots::Create({MakeTempDir()});
  ASSERT_TRUE(roots.ok()) << roots.status();
  if ((*roots)->mechanism() != Mechanism::kOpenat2) {
    GTEST_SKIP() << "openat2 is unavailable here; the fallback is tested above";
  }
  EXPECT_STREQ(DataRoots::MechanismName((*roots)->mechanism()), "openat2(RESOLVE_BENEATH)");
}

}  // namespace
}  // namespace cajal
