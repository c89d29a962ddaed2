#include "common/omp_wait.h"

#include <unistd.h>

#include <cstdlib>

namespace ijepa::common {

void use_passive_omp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: keep going as we are
}

}  // namespace ijepa::common
