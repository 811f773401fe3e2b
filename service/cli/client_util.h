// What the gRPC client commands share: the channel (TLS when asked), call credentials and
// deadlines, how an RPC error is printed and which exit code it gives, and output lines.
#ifndef CAJAL_SERVICE_CLI_CLIENT_UTIL_H_
#define CAJAL_SERVICE_CLI_CLIENT_UTIL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "cajal/v1/training_service.grpc.pb.h"
#include "google/protobuf/message.h"
#include "service/cli/client_commands.h"

namespace cajal {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitBadArgs = 2;

// A stub on a channel to c.server (TLS with c.tls_*). Exits 2 when a TLS file cannot be read.
std::unique_ptr<v1::TrainingService::Stub> Connect(const ClientOptions& c);
// The bearer token, and (when `deadline`) c.timeout_s from now as the call's deadline.
void SetDeadline(grpc::ClientContext* ctx, const ClientOptions& c, bool deadline = true);
// Prints "cajal: <code>: <message>" on stderr; returns 2 for INVALID_ARGUMENT, else 1.
int RpcError(const grpc::Status& s);
// One line on stdout, flushed.
void Print(const std::string& line);
// Protobuf JSON with the proto field names.
std::string Json(const google::protobuf::Message& m);

}  // namespace cajal

#endif  // CAJAL_SERVICE_CLI_CLIENT_UTIL_H_
