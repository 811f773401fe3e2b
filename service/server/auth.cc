#include "service/server/auth.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace cajal {

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  // Compare every byte of the longer string so the time leaks only the lengths.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

absl::Status Authenticator::Check(const grpc::CallbackServerContext& ctx) const {
  if (!enabled()) return absl::OkStatus();
  const auto& md = ctx.client_metadata();
  const auto it = md.find("authorization");
  const std::string given = it == md.end() ? "" : std::string(it->second.data(), it->second.size());
  if (it != md.end() && ConstantTimeEquals(given, expected_)) return absl::OkStatus();
  return absl::UnauthenticatedError(
      "this server requires the metadata `authorization: Bearer <token>` with its token");
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(text.str()));
  if (token.empty())
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, " is empty"));
  return token;
}

}  // namespace cajal
