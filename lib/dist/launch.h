// What the launcher tells a process about the job, read from the environment before MPI starts. The
// factory uses it to decide whether to start MPI at all; rank and sizes proper come from MPI itself.
#pragma once

namespace ijepa::dist {

struct LaunchEnvironment {
  bool under_mpi = false;  // started by mpirun/mpiexec, or by srun with an MPI plugin (PMIx, PMI2)
  int world_size = 1;      // as announced by the launcher; 1 when unknown
};

// Reads OMPI_COMM_WORLD_SIZE (Open MPI's mpirun), PMI_SIZE (MPICH, srun --mpi=pmi2) and PMIX_RANK with
// SLURM_STEP_NUM_TASKS or SLURM_NTASKS (srun --mpi=pmix).
LaunchEnvironment detect_launch();

}  // namespace ijepa::dist
