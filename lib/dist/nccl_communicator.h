// The NCCL backend: CUDA tensors reduced on the communicator's own CUDA stream.
//
// The unique id is made by rank 0 and shared through a host "control" communicator over the same ranks
// (MPI, or the single-process backend for one GPU), which also carries barriers, all-gathers and progress
// queries. A collective waits for the work queued on the caller's current stream (an event), runs on the
// NCCL stream, and its handle's wait() makes the caller's current stream wait on its completion event, so
// the host never blocks. A watchdog thread polls completion events and ncclCommGetAsyncError; a collective
// pending past the timeout, or an asynchronous NCCL error, aborts the NCCL communicator (ncclCommAbort, so
// kernels stuck on a dead peer end), marks the control failed (so MPI_Finalize, which waits for every rank, is
// skipped) and every later call throws the report, which the watchdog also logs. The report names the ranks whose
// device has not reached the collective (not only those whose host has not queued it) and the ranks that issue
// a different collective.
// The communicator is created non-blocking, so initialisation is bounded by the timeout too.
#pragma once

#include <memory>

#include "dist/communicator.h"

namespace ijepa::dist {

// As NcclCommunicator's device_index: the GPU that gpu_for_local_rank picks for the control's local rank.
inline constexpr int kGpuOfLocalRank = -1;

class NcclCommunicator : public Communicator {
 public:
  // Collective over the control's ranks. When setup fails on one rank (no GPU, CUDA, the id exchange, NCCL's
  // init), that rank ends the job through control->abort() with the cause, so that the others do not wait for
  // it until their timeout; with one rank it throws (DistError, or common::InputError when no GPU is visible).
  NcclCommunicator(std::unique_ptr<Communicator> control, int device_index, double timeout_s);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  std::string backend() const override { return "nccl"; }
  int rank() const override { return control_->rank(); }
  int world_size() const override { return control_->world_size(); }
  int local_rank() const override { return control_->local_rank(); }
  torch::Device device() const override;
  double timeout_s() const override { return control_->timeout_s(); }

  WorkHandle all_reduce(const torch::Tensor& tensor, ReduceOp op) override;
  WorkHandle broadcast(const torch::Tensor& tensor, int root) override;
  void barrier() override { control_->barrier(); }
  void synchronize() override;
  std::vector<std::string> all_gather_bytes(const std::string& bytes) override;
  void abort(const std::string& reason, int exit_code) override;

  ProgressTracker& progress() override { return control_->progress(); }
  std::vector<std::optional<ProgressRecord>> peer_progress(double wait_s) override;

  struct State;  // NCCL and CUDA handles, collectives in flight, the watchdog (nccl_communicator.cpp)

 private:
  std::unique_ptr<Communicator> control_;
  std::shared_ptr<State> state_;
};

// The GPU of a local rank among `visible` GPUs: local_rank % visible. With one GPU per rank on the node that is
// the rank's own; when the launcher gives each rank fewer (Kubernetes or Slurm exposing one GPU per rank through
// CUDA_VISIBLE_DEVICES), it is device 0 of what the rank sees. Ranks that end up on one physical GPU are
// refused by NCCL at init. Throws common::InputError when no GPU is visible.
int gpu_for_local_rank(int local_rank, int visible);
// The same for the GPUs this process sees (cudaGetDeviceCount); logs the choice.
int gpu_for_local_rank(int local_rank);

}  // namespace ijepa::dist
