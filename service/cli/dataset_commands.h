// The data set commands of `cajal`: upload a local file to cajald, list the uploaded data sets,
// delete one. Exit codes as the other client commands (client_commands.h).
//
//   cajal upload train.csv            # prints the data set id: use it as data.train.csv.dataset
//   cajal datasets                    # id, size, sha256 prefix, name; newest last
//   cajal delete-dataset ID
#ifndef CAJAL_SERVICE_CLI_DATASET_COMMANDS_H_
#define CAJAL_SERVICE_CLI_DATASET_COMMANDS_H_

#include <string>

#include "service/cli/client_commands.h"

namespace cajal {

// Digests the file (SHA-256), then streams it (a header, then 1 MiB chunks). Prints the id
// alone on stdout (or the Dataset as JSON with --output json), so `ID=$(cajal upload f)` works.
// `name`: the data set's name; empty: the file's base name.
int RunUpload(const ClientOptions& c, const std::string& path, const std::string& name);
int RunListDatasets(const ClientOptions& c);
int RunDeleteDataset(const ClientOptions& c, const std::string& id);

}  // namespace cajal

#endif  // CAJAL_SERVICE_CLI_DATASET_COMMANDS_H_
