#include "service/cli/dataset_commands.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/time_util.h"
#include "service/cli/client_util.h"
#include "service/util/sha256.h"

namespace cajal {
namespace {

constexpr size_t kChunkBytes = 1 << 20;  // the server's limit per message

int BadFile(const std::string& path, const std::string& what) {
  std::fprintf(stderr, "cajal: upload: %s: %s\n", path.c_str(), what.c_str());
  return kExitBadArgs;
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

int RunUpload(const ClientOptions& c, const std::string& path, const std::string& name) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return BadFile(path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return BadFile(path, "not a regular file");
  if (st.st_size == 0) return BadFile(path, "empty");
  absl::StatusOr<std::string> sha = Sha256OfFile(path);
  if (!sha.ok()) return BadFile(path, std::string(sha.status().message()));

  auto stub = Connect(c);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, c, /*deadline=*/false);
  v1::Dataset dataset;
  std::unique_ptr<grpc::ClientWriter<v1::UploadDatasetRequest>> writer =
      stub->UploadDataset(&ctx, &dataset);
  v1::UploadDatasetRequest req;
  v1::UploadDatasetHeader* header = req.mutable_header();
  header->set_name(name.empty() ? BaseName(path) : name);
  header->set_size_bytes(static_cast<int64_t>(st.st_size));
  header->set_sha256(*sha);
  bool sent = writer->Write(req);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buffer(kChunkBytes);
  while (sent && in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() == 0) break;
    req.set_chunk(buffer.data(), static_cast<size_t>(in.gcount()));
    sent = writer->Write(req);  // false: the server ended the call; Finish says why
  }
  if (sent) writer->WritesDone();
  const grpc::Status s = writer->Finish();
  if (!s.ok()) return RpcError(s);
  Print(c.json ? Json(dataset) : dataset.id());
  return kExitOk;
}

int RunListDatasets(const ClientOptions& c) {
  auto stub = Connect(c);
  v1::ListDatasetsRequest req;
  do {
    v1::ListDatasetsResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, c);
    const grpc::Status s = stub->ListDatasets(&ctx, req, &resp);
    if (!s.ok()) return RpcError(s);
    for (const v1::Dataset& d : resp.datasets()) {
      Print(c.json ? Json(d)
                   : absl::StrFormat("%s  %12d bytes  sha256 %s…  %s  %s", d.id(), d.size_bytes(),
                                     d.sha256().substr(0, 12),
                                     google::protobuf::util::TimeUtil::ToString(d.create_time()),
                                     d.name()));
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return kExitOk;
}

int RunDeleteDataset(const ClientOptions& c, const std::string& id) {
  auto stub = Connect(c);
  v1::DeleteDatasetRequest req;
  req.set_id(id);
  google::protobuf::Empty empty;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, c);
  const grpc::Status s = stub->DeleteDataset(&ctx, req, &empty);
  if (!s.ok()) return RpcError(s);
  if (!c.json) Print(absl::StrCat("deleted data set ", id));
  return kExitOk;
}

}  // namespace cajal
