// The Collective of a data-parallel job on GPUs. Float buffers in device memory — the gradient
// buckets, the parameters and optimizer state broadcast from rank 0, batch norm's running
// statistics — are summed and broadcast by NCCL on the GPU, ordered with the CUDA backend's
// kernels on the calling thread's stream (cuda_backend.h, ThreadStream), without the host
// waiting. Everything in host memory (the loss and evaluation sums, byte strings, barriers,
// host float buffers of a CPU job) goes to the host collective it wraps (MPI), which also
// bootstraps NCCL: rank 0's ncclUniqueId reaches every rank through Broadcast(std::string*).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Collective> mpi, CreateMpiCollective());
//   std::unique_ptr<Collective> c = WrapForGpus(std::move(mpi));  // under mpirun, in main()
//
// Where a buffer lives is asked of CUDA (cudaPointerGetAttributes) at each call. The NCCL
// communicator is made at the first call on device memory, which every rank makes at the same
// point of the same job. Errors: kUnavailable when a peer failed (ncclRemoteError), kInternal
// naming the NCCL or CUDA call otherwise.
//
// Thread safety: one training thread per rank, as Collective.
#ifndef CAJAL_CORE_COLLECTIVE_NCCL_NCCL_COLLECTIVE_H_
#define CAJAL_CORE_COLLECTIVE_NCCL_NCCL_COLLECTIVE_H_

#include <memory>

#include "core/collective/collective.h"

namespace cajal {

// Under mpirun on a machine with visible GPUs: makes this rank's GPU the process's default
// (registry.h, SetDefaultGpu: the rank's local index, OMPI_COMM_WORLD_LOCAL_RANK, modulo the
// visible GPUs) and returns `host` wrapped in the NCCL collective for that GPU. Without a
// visible GPU, returns `host` as it is.
std::unique_ptr<Collective> WrapForGpus(std::unique_ptr<Collective> host);

}  // namespace cajal

#endif  // CAJAL_CORE_COLLECTIVE_NCCL_NCCL_COLLECTIVE_H_
