// TensorBoard event files: what TensorBoard, the Kubeflow TensorBoard component and Katib's
// TensorFlowEvent metrics collector read.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<EventWriter> w, EventWriter::Create("/runs/exp1"));
//   RETURN_IF_ERROR(w->WriteScalars(/*step=*/120, {{"loss", 0.31}, {"accuracy", 0.88}}));
//
// Create makes the directory (with parents) and a new file
// `events.out.tfevents.<unix seconds>.<hostname>` in it (".1", ".2", ... appended if that name
// is taken; an existing file is never touched), then writes the first record: an Event with
// `file_version: "brain.Event:2"`. Every record is a TFRecord frame:
//
//   uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes |
//   length bytes: a serialized Event | uint32 masked CRC-32C of those bytes
//
// Each record goes to the file with one write(2) as soon as it is made (no user-space buffer),
// so a collector reading the file during training sees every record written so far; with
// `fsync` it is also on disk before the call returns. If the process dies mid-write, only the
// last record can be cut short; readers report it and keep the records before it.
//
// Scalars are stored as TF2's `tf.summary.scalar` stores them: a rank-0 float tensor with
// "scalars" plugin metadata (see proto/tensorboard/summary.proto for why not `simple_value`).
//
// Errors: kInvalidArgument for an empty directory name, kFailedPrecondition when the path (or a
// parent) is a file, kPermissionDenied, kResourceExhausted (disk full) or kInternal for other
// system errors; every message names the path. After a
// failed write the file may end in a partial record, so every later write returns that error.
// An EventWriter is not thread-safe: one thread (the training thread) writes to it.
#ifndef CAJAL_SERVICE_TFEVENTS_EVENT_WRITER_H_
#define CAJAL_SERVICE_TFEVENTS_EVENT_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cajal {

struct EventWriterOptions {
  // fsync(2) after every record: survives a machine crash, costs a disk flush per record.
  bool fsync = false;
};

struct ScalarValue {
  std::string tag;
  double value = 0;  // stored as float32, as TensorBoard's scalars are
};

class EventWriter {
 public:
  static absl::StatusOr<std::unique_ptr<EventWriter>> Create(
      const std::string& dir, const EventWriterOptions& options = {});
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // One Event at `step` holding `values`, stamped with the current time.
  absl::Status WriteScalars(int64_t step, const std::vector<ScalarValue>& values);
  // The same with an explicit `wall_time` in seconds since the Unix epoch.
  absl::Status WriteScalars(int64_t step, double wall_time, const std::vector<ScalarValue>& values);

  // The event file's full path.
  const std::string& path() const { return path_; }

  // One TFRecord frame around `data` (the framing described above), for tests and other writers.
  static std::string Frame(const std::string& data);

 private:
  EventWriter(std::string path, int fd, EventWriterOptions options)
      : path_(std::move(path)), fd_(fd), options_(options) {}
  absl::Status WriteRecord(const std::string& data);

  std::string path_;
  int fd_;
  EventWriterOptions options_;
  absl::Status failed_;  // the first write error; OK while none
};

}  // namespace cajal

#endif  // CAJAL_SERVICE_TFEVENTS_EVENT_WRITER_H_
