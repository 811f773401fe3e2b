// Bearer-token authentication for cajal.v1.TrainingService.
//
// With a token configured, every TrainingService call must carry the metadata
// `authorization: Bearer <token>`; anything else is UNAUTHENTICATED with a message that says
// nothing about the token. The comparison takes the same time whatever the bytes. The health
// service is not checked (kubelet probes cannot send credentials). The token is never logged.
#ifndef CAJAL_SERVICE_SERVER_AUTH_H_
#define CAJAL_SERVICE_SERVER_AUTH_H_

#include <grpcpp/server_context.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cajal {

class Authenticator {
 public:
  Authenticator() = default;  // no token: every call is allowed
  explicit Authenticator(std::string token) : expected_("Bearer " + std::move(token)) {}

  bool enabled() const { return !expected_.empty(); }
  absl::Status Check(const grpc::CallbackServerContext& ctx) const;

 private:
  std::string expected_;
};

// Reads a token file: its content with surrounding whitespace removed; an empty token is an
// error naming the file (never the content).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Equality of two byte strings in time that depends only on their lengths.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_AUTH_H_
