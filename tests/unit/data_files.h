// Test files for the data loaders and the server's data store: temp directories, raw and gzip
// files, IDX files built from their dimensions.
#ifndef CAJAL_TESTS_UNIT_DATA_FILES_H_
#define CAJAL_TESTS_UNIT_DATA_FILES_H_

#include <stdlib.h>
#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cajal {
namespace testing_files {

// A fresh directory under the test's temp dir.
inline std::string MakeTempDir() {
  std::string base = ::testing::TempDir();
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  std::string tmpl = base + "/cajal_data_test_XXXXXX";
  char* dir = ::mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return tmpl;
}

inline void WriteRaw(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::string ReadRaw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void WriteGzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

inline void AppendU32(uint32_t v, std::string* out) {
  out->push_back(static_cast<char>(v >> 24));
  out->push_back(static_cast<char>(v >> 16));
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

// An IDX u8 file: magic 0x0000080<dims.size()>, the dims, then `data`.
inline std::string Idx(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::string out;
  AppendU32(0x800u + static_cast<uint32_t>(dims.size()), &out);
  for (uint32_t d : dims) AppendU32(d, &out);
  out.append(data.begin(), data.end());
  return out;
}

}  // namespace testing_files
}  // namespace cajal

#endif  // CAJAL_TESTS_UNIT_DATA_FILES_H_
