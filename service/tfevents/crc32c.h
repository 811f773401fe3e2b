// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected), the checksum of TFRecord framing, and
// TFRecord's "masked" form of it.
//
//   const uint32_t crc = Crc32c(bytes.data(), bytes.size());  // "123456789" -> 0xE3069283
//   const uint32_t stored = MaskCrc32c(crc);                  // what a TFRecord frame carries
//
// Crc32c uses the SSE4.2 `crc32` instruction when the CPU has it (checked once, at run time; the
// rest of the build needs no -msse4.2) and a table otherwise. Both paths are exposed so that
// tests can check each against published vectors. All functions are pure and thread-safe.
#ifndef CAJAL_SERVICE_TFEVENTS_CRC32C_H_
#define CAJAL_SERVICE_TFEVENTS_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace cajal {

// The CRC-32C of `n` bytes at `data`, on the fastest path this CPU supports.
uint32_t Crc32c(const void* data, size_t n);

// Continues `crc` (a previous result, or 0 for none) over more bytes:
// Crc32cExtend(Crc32c(a), b) == Crc32c(a + b).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

// The two implementations behind Crc32cExtend. Crc32cExtendSse42 may only be called when
// Crc32cHasSse42() is true.
uint32_t Crc32cExtendPortable(uint32_t crc, const void* data, size_t n);
uint32_t Crc32cExtendSse42(uint32_t crc, const void* data, size_t n);
bool Crc32cHasSse42();

// TFRecord's mask, so that a CRC computed over data that itself holds CRCs stays strong:
// rotate right by 15 bits, add 0xa282ead8.
inline uint32_t MaskCrc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

}  // namespace cajal

#endif  // CAJAL_SERVICE_TFEVENTS_CRC32C_H_
