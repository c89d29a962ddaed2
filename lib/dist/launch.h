// What the launcher tells a process about the job, read from the environment before MPI starts. The
// factory uses it to decide whether to start MPI at all; rank and sizes proper come from MPI itself.
#pragma once

namespace ijepa::dist {

struct LaunchEnvironment {
  bool under_mpi = false;  // started by mpirun/mpiexec, or by srun with an MPI plugin (PMIx, PMI2)
  int world_size = 1;      // as announced by the launcher; 1 when unknown
  int rank = -1;           // this process's rank as announced by the launcher; -1 when unknown
  // srun started this many tasks (> 1) without an MPI plugin: no PMI or PMIx variables, so MPI would give each
  // task a world of its own. 0 otherwise (a batch script's own process has no step task count).
  int srun_tasks_without_mpi = 0;
};

// Reads OMPI_COMM_WORLD_SIZE and _RANK (Open MPI's mpirun), PMI_SIZE and PMI_RANK (MPICH, srun --mpi=pmi2) and
// PMIX_RANK with SLURM_STEP_NUM_TASKS or SLURM_NTASKS (srun --mpi=pmix); SLURM_STEP_NUM_TASKS alone is a plain srun.
LaunchEnvironment detect_launch();

}  // namespace ijepa::dist
