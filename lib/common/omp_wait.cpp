#include "common/omp_wait.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

namespace ijepa::common {
namespace {

// Carries the choice's reason across the re-execution, for omp_wait_policy_description().
constexpr const char* kChoiceVariable = "IJEPA_OMP_WAIT_CHOICE";

// The leading integer of an environment variable ("4", "4(x2)", "4,2"), or 0 when unset or not a number.
int leading_int(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? 0 : std::atoi(value);
}

cpu_set_t affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) CPU_SET(0, &set);
  return set;
}

struct CpuTimes {
  double idle = 0;
  double total = 0;
};

// CPU time so far on the cores of `cores`, from the per-core lines of /proc/stat (cpuN user nice system idle
// iowait irq softirq steal ...).
CpuTimes cpu_times(const cpu_set_t& cores) {
  std::ifstream in("/proc/stat");
  CpuTimes t;
  for (std::string line; std::getline(in, line);) {
    int cpu = -1;
    if (std::sscanf(line.c_str(), "cpu%d", &cpu) != 1 || cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &cores))
      continue;
    std::istringstream fields(line.substr(line.find(' ')));
    double value = 0;
    for (int field = 0; field < 8 && fields >> value; ++field) {
      t.total += value;
      if (field == 3 || field == 4) t.idle += value;
    }
  }
  return t;
}

// Our cores' busy time over a short window, in cores, minus the sibling ranks that are starting beside us (they
// are counted in the demand already).
double busy_cores(const cpu_set_t& cores, int local_ranks) {
  const CpuTimes before = cpu_times(cores);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const CpuTimes after = cpu_times(cores);
  const double total = after.total - before.total;
  if (total <= 0) return 0;
  const double busy = CPU_COUNT(&cores) * (1.0 - (after.idle - before.idle) / total);
  return std::max(0.0, busy - (local_ranks - 1));
}

}  // namespace

int launcher_local_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_TASKS_PER_NODE"}) {
    if (const int n = leading_int(name); n > 0) return n;
  }
  return 1;
}

WaitPolicyChoice choose_wait_policy(const CoreShare& share) {
  const int demand = share.local_ranks * share.threads_per_rank;
  std::ostringstream why;
  why << share.local_ranks << " rank(s) x " << share.threads_per_rank << " thread(s) on " << share.cores << " core(s), "
      << std::setprecision(2) << share.busy_cores << " busy elsewhere";
  // Half a core of slack for daemons and the like.
  const bool fits = demand <= share.cores && share.busy_cores + demand <= share.cores + 0.5;
  return {fits ? "ACTIVE" : "PASSIVE", why.str()};
}

CoreShare current_core_share() {
  const cpu_set_t cores = affinity();
  CoreShare share;
  share.cores = CPU_COUNT(&cores);
  // A rank bound to a subset of the node's cores (mpirun --bind-to, srun --cpu-bind) shares them with nobody
  // of its job; otherwise the node's ranks share the cores we see.
  const bool bound = share.cores < sysconf(_SC_NPROCESSORS_ONLN);
  share.local_ranks = bound ? 1 : launcher_local_ranks();
  const int threads = leading_int("OMP_NUM_THREADS");
  share.threads_per_rank = threads > 0 ? threads : share.cores;
  share.busy_cores = busy_cores(cores, share.local_ranks);
  return share;
}

void choose_omp_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  const WaitPolicyChoice choice = choose_wait_policy(current_core_share());
  const std::string note = choice.policy + " (chosen at start: " + choice.reason + ")";
  if (setenv(kChoiceVariable, note.c_str(), 1) != 0) return;
  if (setenv("OMP_WAIT_POLICY", choice.policy.c_str(), 1) != 0) return;
  // The resolved path rather than /proc/self/exe, which would rename the process "exe" in ps, top and pgrep.
  char self[4096];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
  if (length <= 0) return;
  self[length] = '\0';
  execv(self, argv);  // returns only on failure: keep going as we are
}

std::string omp_wait_policy_description() {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  if (policy == nullptr) return "libgomp's default (OMP_WAIT_POLICY unset)";
  const char* note = std::getenv(kChoiceVariable);
  if (note != nullptr && std::string(note).rfind(policy, 0) == 0) return note;
  return std::string(policy) + " (OMP_WAIT_POLICY set by the user)";
}

}  // namespace ijepa::common
