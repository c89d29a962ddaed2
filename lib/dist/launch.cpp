// Launch detection from the launcher's environment variables.
#include "dist/launch.h"

#include <cstdlib>
#include <string>

namespace ijepa::dist {
namespace {

int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  try {
    return std::stoi(value);
  } catch (const std::exception&) {
    return fallback;
  }
}

bool env_set(const char* name) { return std::getenv(name) != nullptr; }

}  // namespace

LaunchEnvironment detect_launch() {
  LaunchEnvironment launch;
  if (env_set("OMPI_COMM_WORLD_SIZE")) {
    launch.under_mpi = true;
    launch.world_size = env_int("OMPI_COMM_WORLD_SIZE", 1);
    launch.rank = env_int("OMPI_COMM_WORLD_RANK", -1);
  } else if (env_set("PMI_SIZE")) {
    launch.under_mpi = true;
    launch.world_size = env_int("PMI_SIZE", 1);
    launch.rank = env_int("PMI_RANK", -1);
  } else if (env_set("PMIX_RANK")) {
    launch.under_mpi = true;
    launch.world_size = env_int("SLURM_STEP_NUM_TASKS", env_int("SLURM_NTASKS", 1));
    launch.rank = env_int("PMIX_RANK", -1);
  } else if (const int tasks = env_int("SLURM_STEP_NUM_TASKS", 1); tasks > 1) {
    launch.srun_tasks_without_mpi = tasks;
  }
  return launch;
}

}  // namespace ijepa::dist
