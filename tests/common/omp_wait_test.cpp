// use_passive_omp_wait: re-executes with OMP_WAIT_POLICY=PASSIVE in the same process, keeps the arguments, and
// leaves a policy the user chose alone.
#include <gtest/gtest.h>

#include <string>

#include "test_util.h"

namespace {

const std::string kProbe = OMP_WAIT_PROBE;

TEST(OmpWait, ReexecutesWithPassiveWaitKeepingPidAndArguments) {
  const auto r = ijepa::testing::run_command("env -u OMP_WAIT_POLICY " + kProbe + " one 'two words'");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "policy=PASSIVE same_pid=1 args=one,two words\n");
}

TEST(OmpWait, LeavesAPolicyTheUserSetAlone) {
  const auto r = ijepa::testing::run_command("OMP_WAIT_POLICY=ACTIVE " + kProbe + " x");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "policy=ACTIVE same_pid=1 args=x\n");
}

}  // namespace
