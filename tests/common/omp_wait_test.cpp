// choose_omp_wait_policy: spins (ACTIVE) only when the job's threads fit idle cores, re-executes with the chosen
// OMP_WAIT_POLICY in the same process keeping the arguments, and leaves a policy the user chose alone.
#include "common/omp_wait.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "test_util.h"

namespace {

using ijepa::common::choose_wait_policy;

const std::string kProbe = OMP_WAIT_PROBE;

std::string policy_for(int cores, int local_ranks, int threads_per_rank, double busy_cores) {
  return choose_wait_policy({cores, local_ranks, threads_per_rank, busy_cores}).policy;
}

TEST(OmpWaitChoice, SpinsWhenTheThreadsFitIdleCores) {
  EXPECT_EQ(policy_for(/*cores=*/2, /*local_ranks=*/1, /*threads_per_rank=*/2, /*busy_cores=*/0.3), "ACTIVE");
  EXPECT_EQ(policy_for(16, 4, 4, 0), "ACTIVE");
}

TEST(OmpWaitChoice, SleepsWhenRanksOversubscribeTheCores) {
  const auto choice = choose_wait_policy({.cores = 2, .local_ranks = 2, .threads_per_rank = 2, .busy_cores = 0});
  EXPECT_EQ(choice.policy, "PASSIVE");
  EXPECT_EQ(choice.reason, "2 rank(s) x 2 thread(s) on 2 core(s), 0 busy elsewhere");
}

TEST(OmpWaitChoice, SleepsWhenOtherProcessesAlreadyKeepTheCoresBusy) {
  EXPECT_EQ(policy_for(2, 1, 2, 1.2), "PASSIVE");
  EXPECT_EQ(policy_for(8, 1, 4, 4.4), "ACTIVE");  // within the half-core slack
}

TEST(OmpWaitChoice, ReadsLocalRanksAndThreadsFromTheLauncher) {
  unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  unsetenv("MPI_LOCALNRANKS");
  unsetenv("SLURM_STEP_TASKS_PER_NODE");
  EXPECT_EQ(ijepa::common::launcher_local_ranks(), 1);
  setenv("SLURM_STEP_TASKS_PER_NODE", "3(x2)", 1);
  EXPECT_EQ(ijepa::common::launcher_local_ranks(), 3);
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);  // mpirun's word comes first
  EXPECT_EQ(ijepa::common::launcher_local_ranks(), 2);
  setenv("OMP_NUM_THREADS", "5", 1);
  EXPECT_EQ(ijepa::common::current_core_share().threads_per_rank, 5);
  unsetenv("OMP_NUM_THREADS");
  const auto share = ijepa::common::current_core_share();
  EXPECT_GE(share.cores, 1);
  EXPECT_EQ(share.threads_per_rank, share.cores);  // LibTorch's default: one thread per core
}

TEST(OmpWait, ReexecutesWithTheChosenPolicyKeepingPidNameAndArguments) {
  // 4096 threads cannot fit this machine's cores, so the choice is PASSIVE whatever the load.
  const auto r = ijepa::testing::run_command(
      "env -u OMP_WAIT_POLICY -u OMPI_COMM_WORLD_LOCAL_SIZE -u MPI_LOCALNRANKS -u SLURM_STEP_TASKS_PER_NODE "
      "OMP_NUM_THREADS=4096 " +
      kProbe + " one 'two words'");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output.substr(0, r.output.find('\n') + 1),
            "policy=PASSIVE same_pid=1 name=omp_wait_probe args=one,two words\n");
  EXPECT_NE(r.output.find("PASSIVE (chosen at start: 1 rank(s) x 4096 thread(s) on "), std::string::npos) << r.output;
}

TEST(OmpWait, LeavesAPolicyTheUserSetAlone) {
  const auto r = ijepa::testing::run_command("OMP_WAIT_POLICY=ACTIVE " + kProbe + " x");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output,
            "policy=ACTIVE same_pid=1 name=omp_wait_probe args=x\nACTIVE (OMP_WAIT_POLICY set by the user)\n");
}

}  // namespace
