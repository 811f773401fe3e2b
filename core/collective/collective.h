// Collective communication among the processes (ranks) of one data-parallel training job.
//
//   std::unique_ptr<Collective> c = SingleProcessCollective();  // or MpiCollective::Create()
//   RETURN_IF_ERROR(c->Broadcast(params, n, /*root=*/0));       // same start on every rank
//   ASSIGN_OR_RETURN(Collective::Request r, c->StartAllReduce(grads, n));
//   ...                                                           // more backward work
//   RETURN_IF_ERROR(c->Wait(r));                                  // grads now summed
//
// Every rank must make the same calls in the same order (as MPI requires); buffers are host
// memory for the MPI implementation and device memory for a GPU one. Errors: kUnavailable or
// kAborted when a peer is gone, kInternal for a library failure; the message names the call.
// core/ includes no MPI header outside collective/mpi/.
//
// Thread safety: one training thread per rank calls a Collective.
#ifndef CAJAL_CORE_COLLECTIVE_COLLECTIVE_H_
#define CAJAL_CORE_COLLECTIVE_COLLECTIVE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cajal {

class Collective {
 public:
  // A started, unfinished reduction.
  using Request = int64_t;

  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks of this job that share this machine (for dividing its cores among them).
  virtual int local_size() const = 0;
  // "single process", "MPI (OpenMPI ...)", "NCCL".
  virtual std::string name() const = 0;

  // data[i] = Σ over ranks of data[i], in place, on every rank.
  virtual absl::Status AllReduceSum(float* data, int64_t n) = 0;
  virtual absl::Status AllReduceSum(double* data, int64_t n) = 0;
  // Starts a sum that may overlap with other work; Wait finishes it. Requests finish in any
  // order but must be started in the same order on every rank.
  virtual absl::StatusOr<Request> StartAllReduce(float* data, int64_t n) = 0;
  virtual absl::Status Wait(Request request) = 0;
  // Lets started reductions progress (MPI progresses non-blocking collectives only inside MPI
  // calls); cheap, call it between pieces of other work.
  virtual void Poll() = 0;
  // Rank `root`'s data to every rank.
  virtual absl::Status Broadcast(float* data, int64_t n, int root) = 0;
  virtual absl::Status Broadcast(std::string* bytes, int root) = 0;
  virtual absl::Status Barrier() = 0;
  // Stops every rank of the job at once (a failure one rank cannot recover from alone, when
  // the others may be waiting in a collective): prints `message` and exits with `code`. The
  // single-process version just returns.
  virtual void Abort(const std::string& message, int code) = 0;
};

// A job of one rank: reductions are identities, broadcasts no-ops.
std::unique_ptr<Collective> SingleProcessCollective();

}  // namespace cajal

#endif  // CAJAL_CORE_COLLECTIVE_COLLECTIVE_H_
