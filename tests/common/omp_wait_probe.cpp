// Prints its OpenMP wait policy, how it was chosen, its pid, process name and arguments after
// common::choose_omp_wait_policy (for omp_wait_test).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/omp_wait.h"

int main(int argc, char** argv) {
  const char* before = std::getenv("IJEPA_PROBE_PID");
  if (before == nullptr) {
    static char pid[64];
    std::snprintf(pid, sizeof pid, "IJEPA_PROBE_PID=%d", static_cast<int>(getpid()));
    putenv(pid);
  }
  ijepa::common::choose_omp_wait_policy(argv);
  std::ifstream comm("/proc/self/comm");
  std::string name;
  std::getline(comm, name);
  std::printf("policy=%s same_pid=%d name=%s args=", std::getenv("OMP_WAIT_POLICY"),
              std::atoi(std::getenv("IJEPA_PROBE_PID")) == static_cast<int>(getpid()), name.c_str());
  for (int i = 1; i < argc; ++i) std::printf("%s%s", argv[i], i + 1 < argc ? "," : "\n");
  std::printf("%s\n", ijepa::common::omp_wait_policy_description().c_str());
  return 0;
}
