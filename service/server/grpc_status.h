// The one place where an absl::Status becomes a grpc::Status: same canonical code, same
// message.
#ifndef CAJAL_SERVICE_SERVER_GRPC_STATUS_H_
#define CAJAL_SERVICE_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace cajal {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace cajal

#endif  // CAJAL_SERVICE_SERVER_GRPC_STATUS_H_
