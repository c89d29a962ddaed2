// The backend for a world of one process: collectives complete at once and leave tensors as they are
// (a sum or mean over one rank). Tests and single-machine runs use it; it checks arguments like the others.
#pragma once

#include <atomic>

#include "dist/communicator.h"

namespace ijepa::dist {

class SingleProcessCommunicator : public Communicator {
 public:
  explicit SingleProcessCommunicator(torch::Device device = torch::kCPU, double timeout_s = 300.0);

  std::string backend() const override { return "single"; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  torch::Device device() const override { return device_; }
  double timeout_s() const override { return timeout_s_; }

  WorkHandle all_reduce(const torch::Tensor& tensor, ReduceOp op) override;
  WorkHandle broadcast(const torch::Tensor& tensor, int root) override;
  void barrier() override;
  std::vector<std::string> all_gather_bytes(const std::string& bytes) override;
  void abort(const std::string& reason, int exit_code) override;

  ProgressTracker& progress() override { return progress_; }
  std::vector<std::optional<ProgressRecord>> peer_progress(double wait_s) override;

 private:
  // Throws DistError after abort(); records the call otherwise.
  void enter(const std::string& op);

  torch::Device device_;
  double timeout_s_;
  ProgressTracker progress_;
  std::atomic<bool> aborted_{false};
};

}  // namespace ijepa::dist
