#include "service/cli/client_util.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "google/protobuf/util/json_util.h"

namespace cajal {

namespace {

std::string ReadFileOrDie(const std::string& flag, const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "cajal: --%s %s: cannot open\n", flag.c_str(), path.c_str());
    std::exit(kExitBadArgs);
  }
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

std::unique_ptr<v1::TrainingService::Stub> Connect(const ClientOptions& c) {
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!c.tls_ca.empty() || !c.tls_cert.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!c.tls_ca.empty()) ssl.pem_root_certs = ReadFileOrDie("tls_ca", c.tls_ca);
    if (!c.tls_cert.empty()) {
      ssl.pem_cert_chain = ReadFileOrDie("tls_cert", c.tls_cert);
      ssl.pem_private_key = ReadFileOrDie("tls_key", c.tls_key);
    }
    creds = grpc::SslCredentials(ssl);
  }
  return v1::TrainingService::NewStub(grpc::CreateChannel(c.server, creds));
}

void SetDeadline(grpc::ClientContext* ctx, const ClientOptions& c, bool deadline) {
  if (!c.token.empty()) ctx->AddMetadata("authorization", "Bearer " + c.token);
  if (!deadline) return;
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(c.timeout_s * 1000)));
}

int RpcError(const grpc::Status& s) {
  std::fprintf(stderr, "cajal: %s: %s\n",
               absl::AsciiStrToLower(std::string(absl::StatusCodeToString(
                                         static_cast<absl::StatusCode>(s.error_code()))))
                   .c_str(),
               s.error_message().c_str());
  return s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? kExitBadArgs : kExitFailed;
}

void Print(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

}  // namespace cajal
