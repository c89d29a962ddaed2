// The single-process backend.
#include "dist/single_process_communicator.h"

#include "common/log.h"
#include "dist/collective_args.h"

namespace ijepa::dist {
namespace {

class DoneWork : public Work {
 public:
  void wait() override {}
  bool completed() override { return true; }
};

}  // namespace

SingleProcessCommunicator::SingleProcessCommunicator(torch::Device device, double timeout_s)
    : device_(device.is_cuda() && !device.has_index() ? torch::Device(torch::kCUDA, 0) : device),
      timeout_s_(timeout_s) {}

void SingleProcessCommunicator::enter(const std::string& op) {
  if (aborted_) throw DistError(op + ": the communicator was aborted");
  progress_.complete(progress_.begin(op));
}

WorkHandle SingleProcessCommunicator::all_reduce(const torch::Tensor& tensor, ReduceOp op) {
  check_collective_tensor(tensor, device_, "all_reduce");
  check_reducible(tensor, op);
  enter(describe_op("all_reduce", tensor));
  return std::make_shared<DoneWork>();
}

WorkHandle SingleProcessCommunicator::broadcast(const torch::Tensor& tensor, int root) {
  check_collective_tensor(tensor, device_, "broadcast");
  check_root(root, 1);
  enter(describe_op("broadcast", tensor));
  return std::make_shared<DoneWork>();
}

void SingleProcessCommunicator::barrier() { enter("barrier"); }

std::vector<std::string> SingleProcessCommunicator::all_gather_bytes(const std::string& bytes) {
  enter("all_gather_bytes");
  return {bytes};
}

void SingleProcessCommunicator::abort(const std::string& reason, int /*exit_code*/) {
  log::error("dist: aborting: " + reason);
  aborted_ = true;
}

std::vector<std::optional<ProgressRecord>> SingleProcessCommunicator::peer_progress(double /*wait_s*/) {
  return {progress_.snapshot()};
}

}  // namespace ijepa::dist
