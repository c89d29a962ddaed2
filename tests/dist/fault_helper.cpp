// A 2-rank job in which the ranks fail to meet in a collective, for the no-silent-hang tests (run_fault.sh).
// Both ranks first complete one all-reduce; then, by scenario:
//   hang:     rank 1 sleeps instead of entering the next all-reduce (alive: its progress thread answers);
//   exit:     rank 1 closes its communicator and leaves main (MPI_Finalize) instead of entering a barrier;
//   die:      rank 1 dies (_exit) before backward; rank 0 runs a synchronizer step and waits in finish();
//   mismatch: rank 0 enters an all-reduce while rank 1 enters a broadcast of the same size, so both stall;
//   truncate: the ranks all-reduce different sizes over the ring, so rank 0 receives more than it expects;
//   retire:   as hang, and rank 0 then checks what its communicator does after the timeout (later calls,
//             handles, the tensors of the collectives still in MPI);
//   busy:     rank 1 announces local work (LocalWork, as rank 0 writing a checkpoint) for 3 timeouts before it enters
//             the all-reduce: rank 0 warns and waits instead of failing, and both complete (exit 0).
// Or, before that all-reduce:
//   late:     rank 1 sleeps before starting MPI, so rank 0 waits in MPI_Init;
//   setup:    rank 1 sleeps instead of creating a second communicator, so rank 0 waits in MPI_Comm_dup.
// A rank must fail within dist.timeout_s (5 s) with a report naming the cause (late: naming itself, since MPI
// cannot tell it who is missing), print it and end the job.
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "dist/gradient_synchronizer.h"
#include "dist/launch.h"
#include "dist/mpi_communicator.h"

namespace {

using ijepa::dist::CollectiveTimeout;
using ijepa::dist::DistError;
using ijepa::dist::MpiCommunicator;
using ijepa::dist::ReduceOp;

void sleep_for_ever() { std::this_thread::sleep_for(std::chrono::minutes(2)); }

// Forces the ring (point-to-point messages) on the smallest all-reduce.
ijepa::dist::MpiTuning ring_always() {
  ijepa::dist::MpiTuning tuning;
  tuning.ring_min_bytes = 0;
  return tuning;
}

// Rank 0 after its all-reduce timed out, with a second one pending: later calls throw CollectiveTimeout, the pending
// handle is not completed, and MPI, which may still finish both collectives, keeps their tensors. Prints one line.
int check_after_timeout(std::unique_ptr<MpiCommunicator> comm) {
  torch::Tensor first_tensor = torch::ones({1024}), second_tensor = torch::ones({8});
  auto first = comm->all_reduce(first_tensor, ReduceOp::kSum);
  auto second = comm->all_reduce(second_tensor, ReduceOp::kSum);
  try {
    first->wait();
    std::cerr << "rank 0: no timeout" << std::endl;
    return 1;
  } catch (const CollectiveTimeout& e) {
    std::cerr << "rank 0 timed out: " << e.what() << std::endl;
  }
  std::vector<std::string> wrong;
  if (second->completed()) wrong.push_back("the pending handle says completed");
  // `call` must throw the stored CollectiveTimeout.
  const auto expect_timeout = [&](const std::string& what, const std::function<void()>& call) {
    try {
      call();
      wrong.push_back(what + " returned");
    } catch (const CollectiveTimeout&) {
    } catch (const std::exception& e) {
      wrong.push_back(what + " threw another error: " + e.what());
    }
  };
  expect_timeout("the pending handle's wait()", [&] { second->wait(); });
  expect_timeout("a later barrier", [&] { comm->barrier(); });
  const auto first_storage = first_tensor.storage().getWeakStorageImpl();
  const auto second_storage = second_tensor.storage().getWeakStorageImpl();
  first.reset();
  second.reset();
  first_tensor = second_tensor = torch::Tensor();
  comm.reset();
  if (first_storage.expired() || second_storage.expired()) wrong.push_back("a tensor still in MPI was freed");
  if (wrong.empty()) {
    std::cerr << "rank 0: after the timeout later calls throw CollectiveTimeout, the pending handle is not "
                 "completed, and MPI's tensors are kept alive"
              << std::endl;
  }
  for (const auto& what : wrong) std::cerr << "rank 0: after the timeout " << what << std::endl;
  return 1;  // the job has failed; MPI_Finalize is skipped, and mpirun ends rank 1
}

// The scenarios in which the ranks enter different collectives; each rank reports its own failure.
void run_mismatch(MpiCommunicator& comm, const std::string& scenario) {
  try {
    if (scenario == "mismatch") {
      const torch::Tensor values = torch::ones({1024});
      (comm.rank() == 0 ? comm.all_reduce(values, ReduceOp::kSum) : comm.broadcast(values, 0))->wait();
    } else {
      comm.all_reduce(torch::ones({comm.rank() == 0 ? 1024 : 2048}), ReduceOp::kSum)->wait();
    }
  } catch (const DistError& e) {
    std::cerr << "rank " << comm.rank() << " failed: " << e.what() << std::endl;
    comm.abort(e.what(), 1);
  }
  std::cerr << "rank " << comm.rank() << ": no error" << std::endl;
}

int run(const std::string& scenario) {
  if (scenario == "late" && ijepa::dist::detect_launch().rank == 1) sleep_for_ever();
  const bool ring = scenario == "mismatch" || scenario == "truncate";
  auto comm = std::make_unique<MpiCommunicator>(5.0, ring ? ring_always() : ijepa::dist::MpiTuning());
  comm->all_reduce(torch::ones({16}), ReduceOp::kAverage)->wait();
  if (scenario == "setup") {
    if (comm->rank() == 1) sleep_for_ever();
    MpiCommunicator second(5.0);
    std::cerr << "rank 0: no error" << std::endl;
    return 0;
  }
  if (ring) {
    run_mismatch(*comm, scenario);
    return 0;
  }
  torch::nn::Linear net(64, 64);
  ijepa::common::DistConfig config;
  config.timeout_s = comm->timeout_s();
  std::optional<ijepa::dist::GradientSynchronizer> sync;
  if (scenario == "die") sync.emplace(*comm, net->named_parameters(), config);  // collective: both ranks
  if (scenario == "busy") {
    if (comm->rank() == 1) {
      const ijepa::dist::LocalWork work(comm->progress(), "writing a checkpoint");
      std::this_thread::sleep_for(std::chrono::duration<double>(3 * comm->timeout_s()));
    }
    comm->all_reduce(torch::ones({1024}), ReduceOp::kSum)->wait();
    std::cerr << "rank " << comm->rank() << ": completed" << std::endl;
    return 0;
  }
  if (comm->rank() == 1) {
    if (scenario == "hang" || scenario == "retire") sleep_for_ever();
    if (scenario == "die") _exit(3);
    return 0;
  }
  if (scenario == "retire") return check_after_timeout(std::move(comm));
  try {
    if (scenario == "hang") {
      comm->all_reduce(torch::ones({1024}), ReduceOp::kSum)->wait();
    } else if (scenario == "exit") {
      comm->barrier();
    } else {
      sync->zero_grad();
      net->forward(torch::randn({8, 64})).sum().backward();
      sync->finish();
    }
  } catch (const DistError& e) {
    std::cerr << "rank 0 failed: " << e.what() << std::endl;
    comm->abort(e.what(), 1);
  }
  std::cerr << "rank 0: no error" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: dist_fault_helper hang|exit|die|mismatch|truncate|retire|busy|late|setup (under mpirun -np 2)"
              << std::endl;
    return 2;
  }
  return run(argv[1]);
}
