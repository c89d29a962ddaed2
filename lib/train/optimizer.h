// AdamW over the reference's four parameter groups (encoder and predictor, each split into decayed: ndim > 1
// and no "bias" in the name; and not decayed: biases and LayerNorm), updated with LibTorch's fused multi-tensor
// kernel: a handful of kernel launches per step instead of a loop over parameters, and no host sync (a step
// with a non-finite gradient is skipped on the device, like the reference's gradient scaler).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace ijepa::train {

struct ParamGroup {
  std::string name;  // "encoder", "predictor", "encoder_no_decay", "predictor_no_decay"
  bool decay = true;
  std::vector<std::string> names;  // trainable parameters' state-dict keys
  std::vector<torch::Tensor> params;
  // Every name the reference lists in this group, the fixed pos_embed included: its optimizer state dict
  // numbers parameters by their position in these lists.
  std::vector<std::string> reference_names;
};

// The reference's init_opt groups, in its order.
std::vector<ParamGroup> reference_param_groups(torch::nn::Module& encoder, torch::nn::Module& predictor);

class AdamW {
 public:
  AdamW(std::vector<ParamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);

  // One update with this step's lr and weight decay (applied to decay groups only). found_inf is a float
  // tensor on the parameters' device: non-zero skips the update (and the step count) without a host sync.
  void step(double lr, double weight_decay, const torch::Tensor& found_inf);

  // Checks every gradient for inf/NaN on the device; returns the float flag step() takes.
  torch::Tensor find_non_finite() const;

  // Drops the gradients (torch.optim's set_to_none): the next backward hands its gradients over instead of adding
  // them into zeroed buffers, which saves a fill and an add per parameter and step.
  void zero_grad();

  const std::vector<ParamGroup>& groups() const { return groups_; }
  // Per-parameter state, in group order: exp_avg and exp_avg_sq, and the shared step count (float scalar).
  std::vector<torch::Tensor>& exp_avg() { return exp_avg_; }
  std::vector<torch::Tensor>& exp_avg_sq() { return exp_avg_sq_; }
  torch::Tensor& step_count() { return step_; }
  double beta1() const { return beta1_; }
  double beta2() const { return beta2_; }
  double eps() const { return eps_; }

  std::vector<torch::Tensor> all_params() const;
  std::vector<torch::Tensor> all_grads() const;

 private:
  std::vector<ParamGroup> groups_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  torch::Tensor step_;
  double beta1_, beta2_, eps_;
};

}  // namespace ijepa::train
