// A tiny network, reference gradients and a recording communicator shared by the single-process and multi-rank
// suites.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "common/config.h"
#include "dist/single_process_communicator.h"

namespace ijepa::dist::testing {

// fc2(tanh(fc1(x))) [+ aux(x)]: 8 -> 16 -> 4, with an optional head that a step may leave unused.
struct TinyNetImpl : torch::nn::Module {
  TinyNetImpl(int64_t hidden = 16) {
    fc1 = register_module("fc1", torch::nn::Linear(8, hidden));
    fc2 = register_module("fc2", torch::nn::Linear(hidden, 4));
    aux = register_module("aux", torch::nn::Linear(8, 4));
  }
  torch::Tensor forward(const torch::Tensor& x, bool use_aux) {  // x: [B, 8] -> [B, 4]
    torch::Tensor out = fc2(torch::tanh(fc1(x)));
    return use_aux ? out + aux(x) : out;
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, aux{nullptr};
};
TORCH_MODULE(TinyNet);

// Same initial weights on every rank and for every copy.
inline TinyNet make_net(int64_t hidden = 16) {
  torch::manual_seed(1);
  return TinyNet(hidden);
}

// A fixed batch per step: x [rows, 8], y [rows, 4].
inline std::pair<torch::Tensor, torch::Tensor> global_batch(int64_t rows, int64_t step = 0) {
  torch::manual_seed(100 + step);
  torch::Tensor x = torch::randn({rows, 8});
  return {x, torch::randn({rows, 4})};
}

inline torch::Tensor loss_of(TinyNet& net, const torch::Tensor& x, const torch::Tensor& y, bool use_aux) {
  return torch::mse_loss(net->forward(x, use_aux), y);
}

// Gradients of the loss on (x, y), in parameter order, computed on `net` (which must have no hooks).
inline std::vector<torch::Tensor> gradients_of(TinyNet& net, const torch::Tensor& x, const torch::Tensor& y,
                                               bool use_aux = true) {
  for (auto& p : net->parameters()) p.mutable_grad() = torch::Tensor();
  loss_of(net, x, y, use_aux).backward();
  std::vector<torch::Tensor> grads;
  for (auto& p : net->parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return grads;
}

inline void copy_weights(TinyNet& from, TinyNet& to) {
  torch::NoGradGuard no_grad;
  auto source = from->parameters();
  auto target = to->parameters();
  for (size_t i = 0; i < source.size(); ++i) target[i].copy_(source[i]);
}

// Buckets of about 100 and 200 bytes, so that the tiny network spans three.
inline common::DistConfig small_buckets() {
  common::DistConfig config;
  config.first_bucket_mb = 100.0 / (1 << 20);
  config.bucket_mb = 200.0 / (1 << 20);
  config.min_buckets = 1;  // the caps as given, not lowered for this small a model
  config.timeout_s = 60;
  return config;
}

// A world of one that records what it is asked to reduce, broadcast and gather.
class RecordingCommunicator : public SingleProcessCommunicator {
 public:
  WorkHandle all_reduce(const torch::Tensor& tensor, ReduceOp op) override {
    reduce_ops.push_back(op);
    return SingleProcessCommunicator::all_reduce(tensor, op);
  }
  WorkHandle broadcast(const torch::Tensor& tensor, int root) override {
    broadcast_bytes.push_back(static_cast<int64_t>(tensor.nbytes()));
    return SingleProcessCommunicator::broadcast(tensor, root);
  }
  std::vector<std::string> all_gather_bytes(const std::string& bytes) override {
    gathered_bytes.push_back(static_cast<int64_t>(bytes.size()));
    return SingleProcessCommunicator::all_gather_bytes(bytes);
  }

  std::vector<ReduceOp> reduce_ops;
  std::vector<int64_t> broadcast_bytes;  // per broadcast
  std::vector<int64_t> gathered_bytes;   // per all-gather, this rank's
};

}  // namespace ijepa::dist::testing
