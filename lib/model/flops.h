// Model FLOPs of the I-JEPA training step, counted from the shapes (2 FLOPs per multiply-add; matrix products and
// attention only, the usual convention), as the reference computes them, so that achieved FLOP/s compare across the
// two: the context encoder's patch embedding over the whole image, though on CPU this project projects only the
// kept patches, and the last blocks of the predictor and the target encoder over every token, though this project
// computes only the outputs that are read there (model/vit.h). No LibTorch here.
#pragma once

#include <cstdint>

#include "model/vit_config.h"

namespace ijepa::model {

// Forward FLOPs of one transformer block over n tokens of width d with MLP hidden h.
double block_flops(double n, double d, double h);

// Forward FLOPs of the encoder on n_tokens of one image (the patch embedding over the whole image, as the reference's).
double encoder_flops(const ViTConfig& c, double n_tokens);

// Forward FLOPs of the predictor for one image: nenc context sets of `context` tokens, npred target blocks of
// `target` tokens each, every block its own sequence.
double predictor_flops(const PredictorConfig& p, double context, double target, int64_t nenc, int64_t npred);

// One training step per image: target encoder forward on all tokens, plus forward and backward (2x) of the context
// encoder and the predictor.
double training_step_flops(const ViTConfig& c, const PredictorConfig& p, double context, double target, int64_t nenc,
                           int64_t npred);

}  // namespace ijepa::model
