// The Collective of a job launched by mpirun (OpenMPI), on MPI_COMM_WORLD. The only place in
// core/ that includes mpi.h (in the .cc).
//
//   if (LaunchedByMpi()) {
//     ASSIGN_OR_RETURN(std::unique_ptr<Collective> c, CreateMpiCollective());
//   }
//
// MPI is initialized on creation (thread level FUNNELED: only the thread that created it calls
// MPI) and finalized when the object is destroyed. Errors from MPI calls are returned as
// statuses (MPI_ERRORS_RETURN); a rank that dies is noticed by mpirun, which ends the others.
#ifndef CAJAL_CORE_COLLECTIVE_MPI_MPI_COLLECTIVE_H_
#define CAJAL_CORE_COLLECTIVE_MPI_MPI_COLLECTIVE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/collective/collective.h"

namespace cajal {

// Whether this process was started by an MPI launcher (mpirun/mpiexec, the MPI Operator's
// launcher): OpenMPI's OMPI_COMM_WORLD_SIZE or PMIx's PMIX_RANK is set.
bool LaunchedByMpi();

// Errors: kInternal when MPI cannot be initialized.
absl::StatusOr<std::unique_ptr<Collective>> CreateMpiCollective();

}  // namespace cajal

#endif  // CAJAL_CORE_COLLECTIVE_MPI_MPI_COLLECTIVE_H_
