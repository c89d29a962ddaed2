#include "train/ema.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>

#include "model/row_kernels.h"

namespace ijepa::train {

namespace {

// Elements per task of the intra-op threads.
constexpr int64_t kElementsPerTask = 1 << 15;

// Two products and a sum, each rounded: this file is built with -ffp-contract=off, so that the compiler does not
// fuse a product into the sum.
IJEPA_VECTORISED void ema_range(float* target, const float* source, float m, float one_minus_m, int64_t n) {
  for (int64_t i = 0; i < n; ++i) target[i] = target[i] * m + source[i] * one_minus_m;
}

bool one_pass(const torch::Tensor& target, const torch::Tensor& source) {
  const auto fits = [](const torch::Tensor& t) {
    return t.is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous();
  };
  return fits(target) && fits(source) && target.sizes() == source.sizes();
}

}  // namespace

void ema_update(std::vector<torch::Tensor>& targets, const std::vector<torch::Tensor>& sources, double momentum) {
  if (targets.size() != sources.size()) {
    throw std::invalid_argument("ema_update: " + std::to_string(targets.size()) + " targets for " +
                                std::to_string(sources.size()) + " sources");
  }
  const torch::NoGradGuard no_grad;
  // As the reference's Python scalars reach ATen's fp32 kernels: m and 1 - m (computed in double) as floats.
  const auto m = static_cast<float>(momentum), one_minus_m = static_cast<float>(1.0 - momentum);
  std::vector<torch::Tensor> other_targets, other_sources;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (!one_pass(targets[i], sources[i])) {
      other_targets.push_back(targets[i]);
      other_sources.push_back(sources[i]);
      continue;
    }
    float* target = targets[i].data_ptr<float>();
    const float* source = sources[i].data_ptr<float>();
    at::parallel_for(0, targets[i].numel(), kElementsPerTask, [&](int64_t begin, int64_t end) {
      ema_range(target + begin, source + begin, m, one_minus_m, end - begin);
    });
  }
  if (other_targets.empty()) return;
  torch::_foreach_mul_(other_targets, momentum);
  torch::_foreach_add_(other_targets, torch::_foreach_mul(other_sources, 1.0 - momentum));
}

}  // namespace ijepa::train
