#include "core/util/cores.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

namespace cajal {
namespace {

// Returns the quota in cores (rounded up) or 0 when unlimited or unknown.
int CgroupQuotaCores() {
  std::ifstream v2("/sys/fs/cgroup/cpu.max");
  if (v2) {
    std::string quota;
    long period = 0;
    if (v2 >> quota >> period && quota != "max" && period > 0) {
      return static_cast<int>(std::ceil(std::stod(quota) / static_cast<double>(period)));
    }
    return 0;
  }
  std::ifstream q("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  std::ifstream p("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  long quota = -1, period = 0;
  if (q >> quota && p >> period && quota > 0 && period > 0) {
    return static_cast<int>((quota + period - 1) / period);
  }
  return 0;
}

}  // namespace

int AvailableCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int cores = 1;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = std::max(1, CPU_COUNT(&set));
  const int quota = CgroupQuotaCores();
  if (quota > 0) cores = std::min(cores, quota);
  return std::max(1, cores);
}

bool AffinityRestricted() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return false;
  return CPU_COUNT(&set) < sysconf(_SC_NPROCESSORS_ONLN);
}

double PeakRssMb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream in(line.substr(6));
      double kb = 0;
      in >> kb;
      return kb / 1024.0;
    }
  }
  return -1;
}

}  // namespace cajal
