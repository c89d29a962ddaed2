#include "model/init.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

namespace ijepa::model {

namespace {

double normal_cdf(double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; }

// The per-module rule of the models' own _init_weights (stage 2).
void init_module(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  if (auto* linear = m.as<torch::nn::LinearImpl>()) {
    trunc_normal_(linear->weight);
    if (linear->bias.defined()) linear->bias.zero_();
  } else if (auto* conv = m.as<torch::nn::Conv2dImpl>()) {
    trunc_normal_(conv->weight);
    if (conv->bias.defined()) conv->bias.zero_();
  } else if (auto* norm = m.as<torch::nn::LayerNormImpl>()) {
    norm->bias.zero_();
    norm->weight.fill_(1.0);
  }
}

// The helper's pass (stage 3): Linear and LayerNorm only, parents before children.
void reinit_module(torch::nn::Module& m) {
  if (m.as<torch::nn::LinearImpl>() || m.as<torch::nn::LayerNormImpl>()) init_module(m);
}

void rescale_blocks(torch::nn::ModuleList& blocks) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < blocks->size(); ++i) {
    auto* block = blocks[i]->as<BlockImpl>();
    const double scale = std::sqrt(2.0 * static_cast<double>(i + 1));
    block->attn->proj->weight.div_(scale);
    block->mlp->fc2->weight.div_(scale);
  }
}

// Leaf modules come in the same order in pre- and post-order walks, and only leaves draw numbers.
void for_each_module(torch::nn::Module& root, void (*fn)(torch::nn::Module&)) {
  for (const auto& m : root.modules(/*include_self=*/true)) fn(*m);
}

}  // namespace

void trunc_normal_(torch::Tensor& t, double std, double a, double b) {
  torch::NoGradGuard no_grad;
  const double l = normal_cdf(a / std), u = normal_cdf(b / std);
  t.uniform_(2 * l - 1, 2 * u - 1);
  t.erfinv_();
  t.mul_(std * std::sqrt(2.0));
  t.clamp_(a, b);
}

Models build_models(const ViTConfig& encoder_config, const PredictorConfig& predictor_config) {
  Models m;
  m.encoder = VisionTransformer(encoder_config);
  for_each_module(*m.encoder, init_module);
  rescale_blocks(m.encoder->blocks);

  m.predictor = Predictor(predictor_config);
  trunc_normal_(m.predictor->mask_token);
  for_each_module(*m.predictor, init_module);
  rescale_blocks(m.predictor->predictor_blocks);

  for_each_module(*m.encoder, reinit_module);
  for_each_module(*m.predictor, reinit_module);
  return m;
}

VisionTransformer clone_as_target(const VisionTransformer& encoder) {
  // Building a module draws default inits from the global generator; the reference's deepcopy draws nothing,
  // so the generator's state is put back before anything else draws.
  auto generator = at::detail::getDefaultCPUGenerator();
  const auto state = generator.get_state();
  VisionTransformer target(encoder->config());
  generator.set_state(state);

  torch::NoGradGuard no_grad;
  target->to(encoder->pos_embed.device());
  const auto source = encoder->named_parameters();
  for (auto& p : target->named_parameters()) {
    p.value().copy_(source[p.key()]);
    p.value().set_requires_grad(false);
  }
  return target;
}

}  // namespace ijepa::model
