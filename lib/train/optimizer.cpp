#include "train/optimizer.h"

#include <stdexcept>

namespace ijepa::train {

namespace {
bool reference_decays(const std::string& name, const torch::Tensor& p) {
  return name.find("bias") == std::string::npos && p.dim() != 1;
}
}  // namespace

std::vector<ParamGroup> reference_param_groups(torch::nn::Module& encoder, torch::nn::Module& predictor) {
  std::vector<ParamGroup> out;
  struct Source {
    const char* name;
    torch::nn::Module* model;
    bool decay;
  };
  // The reference's order: encoder decay, predictor decay, encoder no-decay, predictor no-decay.
  for (const Source& s :
       {Source{"encoder", &encoder, true}, Source{"predictor", &predictor, true},
        Source{"encoder_no_decay", &encoder, false}, Source{"predictor_no_decay", &predictor, false}}) {
    ParamGroup group{s.name, s.decay, {}, {}, {}};
    for (const auto& p : s.model->named_parameters()) {
      if (reference_decays(p.key(), p.value()) != s.decay) continue;
      group.reference_names.push_back(p.key());
      if (!p.value().requires_grad()) continue;
      group.names.push_back(p.key());
      group.params.push_back(p.value());
    }
    out.push_back(std::move(group));
  }
  return out;
}

AdamW::AdamW(std::vector<ParamGroup> groups, double beta1, double beta2, double eps)
    : groups_(std::move(groups)), beta1_(beta1), beta2_(beta2), eps_(eps) {
  torch::NoGradGuard no_grad;
  torch::Device device = torch::kCPU;
  for (const auto& g : groups_) {
    for (const auto& p : g.params) {
      exp_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
      exp_avg_sq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
      device = p.device();
    }
  }
  step_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
}

std::vector<torch::Tensor> AdamW::all_params() const {
  std::vector<torch::Tensor> out;
  for (const auto& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

std::vector<torch::Tensor> AdamW::all_grads() const {
  std::vector<torch::Tensor> out;
  for (const auto& g : groups_) {
    for (const auto& p : g.params) {
      if (!p.grad().defined()) throw std::logic_error("AdamW: a parameter has no gradient");
      out.push_back(p.grad());
    }
  }
  return out;
}

torch::Tensor AdamW::find_non_finite() const {
  auto found_inf = torch::zeros({1}, step_.options());
  auto grads = all_grads();
  at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, torch::ones({1}, step_.options()));
  return found_inf;
}

void AdamW::step(double lr, double weight_decay, const torch::Tensor& found_inf) {
  torch::NoGradGuard no_grad;
  step_.add_(1);
  size_t offset = 0;
  for (const auto& g : groups_) {
    const size_t n = g.params.size();
    if (n == 0) continue;
    std::vector<torch::Tensor> grads;
    grads.reserve(n);
    for (const auto& p : g.params) grads.push_back(p.grad());
    const auto slice = [&](std::vector<torch::Tensor>& v) {
      return std::vector<torch::Tensor>(v.begin() + static_cast<std::ptrdiff_t>(offset),
                                        v.begin() + static_cast<std::ptrdiff_t>(offset + n));
    };
    auto avg = slice(exp_avg_), avg_sq = slice(exp_avg_sq_);
    const std::vector<torch::Tensor> steps(n, step_);  // one shared count: every parameter steps together
    at::_fused_adamw_(g.params, grads, avg, avg_sq, /*max_exp_avg_sqs=*/{}, steps, lr, beta1_, beta2_,
                      g.decay ? weight_decay : 0.0, eps_, /*amsgrad=*/false, /*maximize=*/false,
                      /*grad_scale=*/std::nullopt, found_inf);
    offset += n;
  }
  step_.sub_(found_inf.squeeze());  // a skipped step does not count, as in torch.optim with found_inf
}

void AdamW::zero_grad() {
  for (const auto& g : groups_) {
    for (const auto& p : g.params) {
      if (p.grad().defined()) p.mutable_grad().reset();
    }
  }
}

}  // namespace ijepa::train
