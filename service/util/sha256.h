// SHA-256 through OpenSSL's libcrypto (EVP), for uploaded data sets: the client digests the
// file before it sends it, the server digests what it received, and the two must agree.
//
//   Sha256 h;
//   h.Update(chunk1);
//   h.Update(chunk2);
//   std::string hex = h.HexDigest();  // 64 lowercase hex characters
//
// Not thread-safe; movable, not copyable.
#ifndef CAJAL_SERVICE_UTIL_SHA256_H_
#define CAJAL_SERVICE_UTIL_SHA256_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct evp_md_ctx_st;

namespace cajal {

class Sha256 {
 public:
  Sha256();
  void Update(absl::string_view bytes);
  // The digest of everything passed to Update; call once.
  std::string HexDigest();

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

// The digest of a whole file, read in 1 MiB pieces. kNotFound naming the file.
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

// Whether `hex` is 64 hex characters (either case).
bool IsSha256Hex(absl::string_view hex);

}  // namespace cajal

#endif  // CAJAL_SERVICE_UTIL_SHA256_H_
