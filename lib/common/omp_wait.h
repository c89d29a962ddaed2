// OpenMP wait policy for the project's LibTorch processes.
//
// GNU OpenMP's threads spin at the end of every parallel region unless OMP_WAIT_POLICY says otherwise. A training
// step runs thousands of short regions; when another busy process shares the cores (a second rank, a neighbour's
// job, a build), the spinning teams burn each other's time slices: on this project's 2-core machine a bf16 step
// of benchmark workload (a) took 15 s instead of 0.5 s beside another 2-thread trainer, and 0.5 s with passive
// waiting. libgomp reads the variable once, when it is loaded, so a process that wants it re-executes itself.
#pragma once

namespace ijepa::common {

// Unless OMP_WAIT_POLICY is set already, sets it to PASSIVE and re-executes this program with the same arguments
// (same pid, so launchers and signals are unaffected). Call first thing in main, before any thread or MPI starts.
// If re-executing fails the process simply goes on with the default policy.
void use_passive_omp_wait(char** argv);

}  // namespace ijepa::common
