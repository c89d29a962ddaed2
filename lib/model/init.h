// The reference's initialisation, in its order, so that torch::manual_seed(s) gives the reference's weights:
//   1. constructors draw PyTorch's default inits (VisionTransformer, then Predictor: see build_models);
//   2. each model's own pass: Linear and Conv2d weights ~ trunc_normal(0.02), biases 0, LayerNorm (1, 0), then
//      attn.proj and mlp.fc2 weights divided by sqrt(2 * layer_id); the predictor draws mask_token first;
//   3. the training helper redraws every Linear weight (encoder, then predictor) and resets every LayerNorm,
//      which undoes the rescale of step 2 (Conv2d is not redrawn).
#pragma once

#include <torch/torch.h>

#include "model/vit.h"

namespace ijepa::model {

// The reference's trunc_normal_ with absolute bounds (a, b): uniform in CDF space, erfinv, scale, clamp.
void trunc_normal_(torch::Tensor& t, double std = 0.02, double a = -2.0, double b = 2.0);

struct Models {
  VisionTransformer encoder{nullptr};
  Predictor predictor{nullptr};
};

// Builds encoder and predictor with the three initialisation stages above, drawing from the global generator.
Models build_models(const ViTConfig& encoder, const PredictorConfig& predictor);

// A deep copy of the encoder with requires_grad off: the EMA target encoder.
VisionTransformer clone_as_target(const VisionTransformer& encoder);

}  // namespace ijepa::model
