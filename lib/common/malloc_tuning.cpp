#include "common/malloc_tuning.h"

#include <malloc.h>

#include <climits>
#include <cstdlib>
#include <cstring>

namespace ijepa::common {
namespace {

// glibc's own maximum (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit): blocks above it are still mapped and unmapped.
constexpr int kMmapThreshold = 32 * 1024 * 1024;

enum class Tuning { kNotYet, kApplied, kUserSettings, kFailed };
Tuning tuning = Tuning::kNotYet;

bool user_tuned_malloc() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr) return true;
  for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

}  // namespace

void keep_freed_memory() {
  if (user_tuned_malloc()) {
    tuning = Tuning::kUserSettings;
    return;
  }
  // mallopt returns 1 on success. Setting either threshold also stops glibc adjusting them by itself.
  const bool applied = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
  tuning = applied ? Tuning::kApplied : Tuning::kFailed;
}

std::string malloc_tuning_description() {
  switch (tuning) {
    case Tuning::kApplied:
      return "freed memory kept in the process (malloc mmap threshold 32 MiB, trim threshold 2 GiB)";
    case Tuning::kUserSettings:
      return "glibc's malloc settings from the environment";
    case Tuning::kFailed:
      return "glibc's default malloc settings (mallopt refused the project's)";
    case Tuning::kNotYet:
      break;
  }
  return "glibc's default malloc settings";
}

}  // namespace ijepa::common
