// OpenMP wait policy for the project's LibTorch processes.
//
// GNU OpenMP's threads spin at the end of every parallel region unless OMP_WAIT_POLICY says otherwise. A training
// step runs thousands of short regions. When the process has its cores to itself, spinning (ACTIVE) is the
// fastest: bf16 steps ran 1.15-1.8x faster than with sleeping threads (PASSIVE) here (BENCHMARKS.md).
// When another busy process shares the cores (a second rank, a neighbour's job, a build), the spinning teams burn
// each other's time slices: on this project's 2-core machine that step took 15 s instead of 0.5 s beside another
// 2-thread trainer. So the policy is chosen from how the cores are shared at start, unless the user set it.
// libgomp reads the variable once, when it is loaded, so a process that wants it re-executes itself.
#pragma once

#include <string>

namespace ijepa::common {

// How this process will share the machine's cores.
struct CoreShare {
  int cores = 1;             // CPUs this process may run on (its affinity mask)
  int local_ranks = 1;       // ranks of the job sharing these cores (from the MPI launcher or Slurm; 1 if bound)
  int threads_per_rank = 1;  // OMP_NUM_THREADS, else one per core (LibTorch's default)
  double busy_cores = 0;     // cores kept busy by other processes at start (sibling ranks not counted)
};

struct WaitPolicyChoice {
  std::string policy;  // "ACTIVE" or "PASSIVE"
  std::string reason;  // for the log: why
};

// ACTIVE when every rank's threads fit the cores that other processes leave free; PASSIVE otherwise.
WaitPolicyChoice choose_wait_policy(const CoreShare& share);

// Ranks on this node as Open MPI, MPICH/Hydra or Slurm's srun tell them; 1 when none of them started us.
int launcher_local_ranks();

// Reads the share from the affinity mask, the launcher's environment and /proc/stat (sampled for 200 ms: the load
// average would still count a build that just finished).
CoreShare current_core_share();

// Unless OMP_WAIT_POLICY is set already, sets it to choose_wait_policy(current_core_share()) and re-executes this
// program with the same arguments (same pid, so launchers and signals are unaffected). Call first thing in main,
// before any thread or MPI starts. If re-executing fails the process goes on with libgomp's default.
void choose_omp_wait_policy(char** argv);

// One line for the start-up log: the policy in force and who chose it.
std::string omp_wait_policy_description();

}  // namespace ijepa::common
