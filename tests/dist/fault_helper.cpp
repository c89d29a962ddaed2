// A 2-rank job in which rank 1 fails to join a collective, for the no-silent-hang tests (run_fault.sh).
// Both ranks first complete one all-reduce; then, by scenario:
//   hang: rank 1 sleeps instead of entering the next all-reduce (alive: its progress thread answers);
//   exit: rank 1 closes its communicator and leaves main (MPI_Finalize) instead of entering a barrier;
//   die:  rank 1 dies (_exit) before backward; rank 0 runs a synchronizer step and waits in finish().
// Or, before that all-reduce:
//   late: rank 1 sleeps before starting MPI, so rank 0 waits in MPI_Init.
// Rank 0 must fail within dist.timeout_s (5 s) with a report naming rank 1 (late: naming itself, since MPI cannot
// tell it who is missing), print it and end the job.
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <optional>
#include <thread>

#include "dist/gradient_synchronizer.h"
#include "dist/launch.h"
#include "dist/mpi_communicator.h"

namespace {

using ijepa::dist::ReduceOp;

int run(const std::string& scenario) {
  if (scenario == "late" && ijepa::dist::detect_launch().rank == 1) {
    std::this_thread::sleep_for(std::chrono::minutes(2));
  }
  ijepa::dist::MpiCommunicator comm(5.0);
  comm.all_reduce(torch::ones({16}), ReduceOp::kAverage)->wait();
  torch::nn::Linear net(64, 64);
  ijepa::common::DistConfig config;
  config.timeout_s = comm.timeout_s();
  std::optional<ijepa::dist::GradientSynchronizer> sync;
  if (scenario == "die") sync.emplace(comm, net->named_parameters(), config);  // collective: both ranks
  if (comm.rank() == 1) {
    if (scenario == "hang") std::this_thread::sleep_for(std::chrono::minutes(2));
    if (scenario == "die") _exit(3);
    return 0;
  }
  try {
    if (scenario == "hang") {
      comm.all_reduce(torch::ones({1024}), ReduceOp::kSum)->wait();
    } else if (scenario == "exit") {
      comm.barrier();
    } else {
      sync->zero_grad();
      net->forward(torch::randn({8, 64})).sum().backward();
      sync->finish();
    }
  } catch (const ijepa::dist::DistError& e) {
    std::cerr << "rank 0 failed: " << e.what() << std::endl;
    comm.abort(e.what(), 1);
  }
  std::cerr << "rank 0: no error" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: dist_fault_helper hang|exit|die|late (under mpirun -np 2)" << std::endl;
    return 2;
  }
  return run(argv[1]);
}
