// Prints its OpenMP wait policy, pid and arguments after common::use_passive_omp_wait (for omp_wait_test).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "common/omp_wait.h"

int main(int argc, char** argv) {
  const char* before = std::getenv("IJEPA_PROBE_PID");
  if (before == nullptr) {
    static char pid[64];
    std::snprintf(pid, sizeof pid, "IJEPA_PROBE_PID=%d", static_cast<int>(getpid()));
    putenv(pid);
  }
  ijepa::common::use_passive_omp_wait(argv);
  std::printf("policy=%s same_pid=%d args=", std::getenv("OMP_WAIT_POLICY"),
              std::atoi(std::getenv("IJEPA_PROBE_PID")) == static_cast<int>(getpid()));
  for (int i = 1; i < argc; ++i) std::printf("%s%s", argv[i], i + 1 < argc ? "," : "\n");
  return 0;
}
