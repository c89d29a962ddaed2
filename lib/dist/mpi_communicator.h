// The MPI backend: CPU tensors, non-blocking MPI collectives (MPI_Iallreduce, MPI_Ibcast) driven by a
// progress thread (mpi_engine.h). Works on its own duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN.
//
// bf16 sums use a custom MPI op that adds in fp32 and rounds to bf16 once per reduction step (MPI has no
// bf16 type); averages scale the sum by 1/world size after it arrives. Counts above INT_MAX (or the
// max_count given for tests) are split into several collectives. All-reduces of ring_min_bytes and more run
// as a segmented ring over point-to-point messages (mpi_ring.h), which moves large buffers faster.
#pragma once

#include <mpi.h>

#include <climits>
#include <memory>

#include "dist/communicator.h"
#include "dist/mpi_runtime.h"

namespace ijepa::dist {

class MpiEngine;
struct RingScratch;

// How collectives are cut up; the defaults are what BENCHMARKS.md measured best, the rest is for tests and
// benchmarks. Every rank must use the same values.
struct MpiTuning {
  int max_count = INT_MAX;                    // most elements per MPI collective call
  int64_t ring_min_bytes = int64_t{8} << 20;  // all-reduces this large run as a segmented ring
  int64_t ring_segment_bytes = 512 << 10;     // the ring's unit of transfer and addition (cache-sized)
};

class MpiCommunicator : public Communicator {
 public:
  // Starts MPI if nobody has (MpiRuntime; its start, like every collective, bounded by timeout_s). Collective:
  // every rank constructs its communicators in the same order; a rank that waits for the others longer than
  // timeout_s aborts the job. Throws std::invalid_argument for a timeout or tuning out of range, before MPI starts.
  explicit MpiCommunicator(double timeout_s = 300.0, MpiTuning tuning = {});
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  std::string backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  torch::Device device() const override { return torch::kCPU; }
  double timeout_s() const override { return timeout_s_; }

  WorkHandle all_reduce(const torch::Tensor& tensor, ReduceOp op) override;
  WorkHandle broadcast(const torch::Tensor& tensor, int root) override;
  void barrier() override;
  std::vector<std::string> all_gather_bytes(const std::string& bytes) override;
  void abort(const std::string& reason, int exit_code) override;
  void mark_failed() override;

  ProgressTracker& progress() override;
  std::vector<std::optional<ProgressRecord>> peer_progress(double wait_s) override;

 private:
  std::shared_ptr<MpiRuntime> runtime_;
  double timeout_s_;
  MpiTuning tuning_;
  std::shared_ptr<RingScratch> ring_scratch_;
  MPI_Comm comm_ = MPI_COMM_NULL;         // collectives
  MPI_Comm status_comm_ = MPI_COMM_NULL;  // the progress side channel
  MPI_Op bf16_sum_ = MPI_OP_NULL;
  int rank_ = 0;
  int world_ = 1;
  int local_rank_ = 0;
  std::shared_ptr<MpiEngine> engine_;
};

}  // namespace ijepa::dist
