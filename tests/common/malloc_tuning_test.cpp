// keep_freed_memory: a block freed and allocated again is not faulted in again page by page (glibc's default does
// that, which cost training steps 2-15%), and malloc settings the user chose are left alone.
#include <gtest/gtest.h>

#include <string>

#include "test_util.h"

namespace {

const std::string kProbe = MALLOC_PROBE;

struct ProbeResult {
  long repeat_faults = -1;
  std::string description;
};

ProbeResult run_probe(const std::string& environment, const std::string& argument) {
  const auto r = ijepa::testing::run_command(
      "env -u GLIBC_TUNABLES -u MALLOC_MMAP_THRESHOLD_ -u MALLOC_TRIM_THRESHOLD_ -u MALLOC_TOP_PAD_ "
      "-u MALLOC_MMAP_MAX_ " +
      environment + " " + kProbe + " " + argument);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  ProbeResult result;
  const auto newline = r.output.find('\n');
  if (r.output.rfind("repeat_faults=", 0) != 0 || newline == std::string::npos) {
    ADD_FAILURE() << "unexpected probe output: " << r.output;
    return result;
  }
  result.repeat_faults = std::stol(r.output.substr(14, newline - 14));
  result.description = r.output.substr(newline + 1);
  return result;
}

TEST(MallocTuning, AFreedBlockIsReusedWithoutPageFaults) {
  const auto glibc_default = run_probe("", "none");
  const auto kept = run_probe("", "keep");
  // glibc's default faults the freed 16 MiB block in again at least once: 4096 faults with 4 KiB pages (measured
  // here), fewer where transparent huge pages back it. Kept, it is reused as it is.
  EXPECT_GT(glibc_default.repeat_faults, 0);
  EXPECT_EQ(glibc_default.description, "glibc's default malloc settings\n");
  EXPECT_LE(kept.repeat_faults, glibc_default.repeat_faults / 64);
  EXPECT_EQ(kept.description,
            "freed memory kept in the process (malloc mmap threshold 32 MiB, trim threshold 2 GiB)\n");
}

TEST(MallocTuning, LeavesTheUsersMallocSettingsAlone) {
  // A trim threshold of the user's: glibc then keeps its mmap threshold fixed at 128 KiB, and every allocation of
  // the block is mapped and faulted in afresh (16384 faults here), more often than with glibc's defaults.
  const auto glibc_default = run_probe("", "none");
  for (const std::string setting :
       {"GLIBC_TUNABLES=glibc.malloc.trim_threshold=1000000000", "MALLOC_TRIM_THRESHOLD_=1000000000"}) {
    const auto users = run_probe(setting, "keep");
    EXPECT_GT(users.repeat_faults, glibc_default.repeat_faults) << setting;
    EXPECT_EQ(users.description, "glibc's malloc settings from the environment\n") << setting;
  }
}

}  // namespace
