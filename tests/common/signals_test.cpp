// Stop signals: the first asks the training loop to stop (a flag it polls), the same signal again ends the
// process at once. Each case runs in a child process (a death test), where the handlers can be installed freely.
#include "common/signals.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <csignal>

namespace ijepa::common {
namespace {

TEST(StopSignals, TheFirstSignalOnlySetsTheFlag) {
  EXPECT_EXIT(
      {
        install_stop_handlers();
        std::raise(SIGTERM);
        _exit(stop_signal() == SIGTERM ? 0 : 3);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(StopSignals, TheSameSignalAgainEndsTheProcess) {
  EXPECT_EXIT(
      {
        install_stop_handlers();
        std::raise(SIGINT);
        if (stop_signal() != SIGINT) _exit(3);
        std::raise(SIGINT);
        _exit(4);
      },
      ::testing::KilledBySignal(SIGINT), "");
}

TEST(StopSignals, AnotherSignalIsStillOnlyAStopRequest) {
  EXPECT_EXIT(
      {
        install_stop_handlers();
        std::raise(SIGUSR1);  // Slurm's preemption warning, then the time limit's SIGTERM
        std::raise(SIGTERM);
        _exit(stop_signal() == SIGTERM ? 0 : 3);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace ijepa::common
