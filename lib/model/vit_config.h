// Model shapes: the reference's named ViT sizes and the predictor. No LibTorch here.
#pragma once

#include <cstdint>
#include <string>

namespace ijepa::model {

struct ViTConfig {
  int64_t img_size = 224;  // square images
  int64_t patch_size = 16;
  int64_t in_chans = 3;
  int64_t embed_dim = 768;
  int64_t depth = 12;
  int64_t num_heads = 12;
  int64_t mlp_hidden = 3072;  // int(embed_dim * mlp_ratio), 6144 for vit_giant

  int64_t grid() const { return img_size / patch_size; }
  int64_t num_patches() const { return grid() * grid(); }
};

struct PredictorConfig {
  int64_t grid = 14;  // patch grid side of the encoder
  int64_t embed_dim = 768;
  int64_t predictor_embed_dim = 384;
  int64_t depth = 6;
  int64_t num_heads = 12;

  int64_t mlp_hidden() const { return predictor_embed_dim * 4; }
};

// The reference's sizes (tiny 192/12/3, small 384/12/6, base 768/12/12, large 1024/24/16, huge 1280/32/16,
// giant 1408/40/16 with mlp 6144). Throws std::invalid_argument for an unknown name.
ViTConfig vit_preset(const std::string& name, int64_t img_size, int64_t patch_size, int64_t in_chans);

// The predictor the reference's init_model builds for an encoder: same grid and head count.
PredictorConfig predictor_for(const ViTConfig& encoder, int64_t predictor_embed_dim, int64_t depth);

}  // namespace ijepa::model
