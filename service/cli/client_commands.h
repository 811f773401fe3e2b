// The gRPC client commands of `cajal`: submit, get, list, watch, cancel, download, delete.
// Output is for people by default; `--output json` prints protobuf JSON for scripts.
// Exit codes: 0 ok (for submit --wait and watch: the job SUCCEEDED), 1 the job failed or was
// cancelled, or the server answered with an error, 2 bad arguments or spec.
#ifndef CAJAL_SERVICE_CLI_CLIENT_COMMANDS_H_
#define CAJAL_SERVICE_CLI_CLIENT_COMMANDS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace cajal {

struct ClientOptions {
  std::string server = "localhost:50051";
  bool json = false;
  double timeout_s = 30;  // per unary call
  std::string token;      // sent as `authorization: Bearer <token>` when non-empty
  std::string tls_ca;     // PEM CA to verify the server: use TLS
  std::string tls_cert;   // PEM client certificate (mTLS), with tls_key
  std::string tls_key;
};

// Fills `token` from `token_file` or else $CAJAL_TOKEN. Errors name the file.
absl::Status ResolveToken(const std::string& token_file, ClientOptions* options);

struct SubmitOptions {
  std::string spec_path;
  std::vector<std::string> overrides;
  std::string request_id;
  bool wait = false;
};

int RunSubmit(const ClientOptions& c, const SubmitOptions& s);
int RunGet(const ClientOptions& c, const std::string& id);
int RunList(const ClientOptions& c, const std::string& state, int page_size);
int RunWatch(const ClientOptions& c, const std::string& id);
int RunCancel(const ClientOptions& c, const std::string& id);
// `artifact`: "model" (default) or "tfevents".
int RunDownload(const ClientOptions& c, const std::string& id, const std::string& out_path,
                const std::string& artifact = "model");
int RunDelete(const ClientOptions& c, const std::string& id);

}  // namespace cajal

#endif  // CAJAL_SERVICE_CLI_CLIENT_COMMANDS_H_
