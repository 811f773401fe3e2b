#include "service/tfevents/crc32c.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cajal {
namespace {

struct Vector {
  const char* name;
  std::vector<uint8_t> bytes;
  uint32_t crc;
  uint32_t masked;  // MaskCrc32c(crc), as TFRecord stores it
};

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::vector<uint8_t> Iota(int first, int step) {
  std::vector<uint8_t> v(32);
  for (int i = 0; i < 32; ++i) v[i] = static_cast<uint8_t>(first + step * i);
  return v;
}

// CRC-32C check value ("123456789") and RFC 3720 (iSCSI) appendix B.4; the masked values and the
// 1000-byte vector were computed with Debian's python3-crc32c.
std::vector<Vector> Vectors() {
  std::vector<uint8_t> long_input(1000);
  for (int i = 0; i < 1000; ++i) long_input[i] = static_cast<uint8_t>((i * 7 + 3) % 256);
  return {
      {"empty", {}, 0x00000000u, 0xA282EAD8u},
      {"check", Bytes("123456789"), 0xE3069283u, 0xC78AB0E5u},
      {"a", Bytes("a"), 0xC1D04330u, 0x28E46E78u},
      {"32 zeros", std::vector<uint8_t>(32, 0x00), 0x8A9136AAu, 0x0FD7FFFAu},
      {"32 0xFF", std::vector<uint8_t>(32, 0xFF), 0x62A8AB43u, 0xF909B029u},
      {"0..31", Iota(0, 1), 0x46DD794Eu, 0x951F7892u},
      {"31..0", Iota(31, -1), 0x113FDB5Cu, 0x593B0D57u},
      {"1000 bytes", long_input, 0xDD2EDFF7u, MaskCrc32c(0xDD2EDFF7u)},
  };
}

TEST(Crc32cTest, PortablePathMatchesPublishedVectors) {
  for (const Vector& v : Vectors()) {
    EXPECT_EQ(Crc32cExtendPortable(0, v.bytes.data(), v.bytes.size()), v.crc) << v.name;
  }
}

TEST(Crc32cTest, Sse42PathMatchesPublishedVectors) {
  if (!Crc32cHasSse42()) GTEST_SKIP() << "this CPU has no SSE4.2";
  for (const Vector& v : Vectors()) {
    EXPECT_EQ(Crc32cExtendSse42(0, v.bytes.data(), v.bytes.size()), v.crc) << v.name;
  }
}

TEST(Crc32cTest, DispatchedPathMatchesPublishedVectors) {
  for (const Vector& v : Vectors())
    EXPECT_EQ(Crc32c(v.bytes.data(), v.bytes.size()), v.crc) << v.name;
}

TEST(Crc32cTest, MaskMatchesTfRecordValues) {
  for (const Vector& v : Vectors()) EXPECT_EQ(MaskCrc32c(v.crc), v.masked) << v.name;
  // The masked CRC of a TFRecord length field of 3 (8 bytes, little-endian).
  const uint8_t length3[8] = {3, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(MaskCrc32c(Crc32c(length3, sizeof(length3))), 0x0E4999B0u);
}

TEST(Crc32cTest, ExtendEqualsOneShotOnEverySplit) {
  const std::vector<uint8_t> data =
      Bytes("The quick brown fox jumps over the lazy dog, twice over.");
  const uint32_t whole = Crc32c(data.data(), data.size());
  for (size_t cut = 0; cut <= data.size(); ++cut) {
    const uint32_t head = Crc32cExtendPortable(0, data.data(), cut);
    EXPECT_EQ(Crc32cExtendPortable(head, data.data() + cut, data.size() - cut), whole) << cut;
    EXPECT_EQ(Crc32cExtend(Crc32c(data.data(), cut), data.data() + cut, data.size() - cut), whole)
        << cut;
  }
}

// Every length and alignment the 8-byte loops and the byte tails can meet.
TEST(Crc32cTest, PathsAgreeOnAllLengthsAndAlignments) {
  if (!Crc32cHasSse42()) GTEST_SKIP() << "this CPU has no SSE4.2";
  std::mt19937 rng(7);
  std::vector<uint8_t> buf(300 + 8);
  for (uint8_t& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t n = 0; n <= 300; ++n) {
      ASSERT_EQ(Crc32cExtendSse42(0x12345678u, buf.data() + offset, n),
                Crc32cExtendPortable(0x12345678u, buf.data() + offset, n))
          << "offset " << offset << " length " << n;
    }
  }
}

}  // namespace
}  // namespace cajal
