#include "model/flops.h"

namespace ijepa::model {

double block_flops(double n, double d, double h) {
  const double linear = 2.0 * n * (4.0 * d * d + 2.0 * d * h);  // qkv (3d^2), proj (d^2), fc1 and fc2 (dh each)
  const double attention = 4.0 * n * n * d;                     // q k^T and attn v
  return linear + attention;
}

double encoder_flops(const ViTConfig& c, double n_tokens) {
  const double patch =
      2.0 * static_cast<double>(c.num_patches() * c.in_chans * c.patch_size * c.patch_size * c.embed_dim);
  return patch + static_cast<double>(c.depth) *
                     block_flops(n_tokens, static_cast<double>(c.embed_dim), static_cast<double>(c.mlp_hidden));
}

double predictor_flops(const PredictorConfig& p, double context, double target, int64_t nenc, int64_t npred) {
  const auto d = static_cast<double>(p.embed_dim), dp = static_cast<double>(p.predictor_embed_dim);
  const double embed = 2.0 * context * d * dp * static_cast<double>(nenc);
  const double sequences = static_cast<double>(nenc * npred);
  const double blocks =
      static_cast<double>(p.depth) * block_flops(context + target, dp, static_cast<double>(p.mlp_hidden()));
  const double project = 2.0 * target * dp * d;
  return embed + sequences * (blocks + project);
}

double training_step_flops(const ViTConfig& c, const PredictorConfig& p, double context, double target, int64_t nenc,
                           int64_t npred) {
  const double target_forward = encoder_flops(c, static_cast<double>(c.num_patches()));
  const double context_forward = static_cast<double>(nenc) * encoder_flops(c, context);
  return target_forward + 3.0 * (context_forward + predictor_flops(p, context, target, nenc, npred));
}

}  // namespace ijepa::model
