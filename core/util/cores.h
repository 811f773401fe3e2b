// How many CPU cores this process may use: the smaller of its affinity mask and its cgroup
// (v2 `cpu.max`, v1 `cpu.cfs_quota_us`) quota, at least 1. Thread-safe; reads /proc and /sys.
#ifndef CAJAL_CORE_UTIL_CORES_H_
#define CAJAL_CORE_UTIL_CORES_H_

namespace cajal {

int AvailableCores();

// Whether this process's affinity mask leaves out some of the machine's online CPUs (an MPI
// launcher that binds each rank to its cores, taskset, a cpuset).
bool AffinityRestricted();

// Peak resident set size of this process in MiB (VmHWM), or -1 when unknown.
double PeakRssMb();

}  // namespace cajal

#endif  // CAJAL_CORE_UTIL_CORES_H_
