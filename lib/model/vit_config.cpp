#include "model/vit_config.h"

#include <stdexcept>

namespace ijepa::model {

ViTConfig vit_preset(const std::string& name, int64_t img_size, int64_t patch_size, int64_t in_chans) {
  struct Size {
    const char* name;
    int64_t dim, depth, heads, mlp_hidden;
  };
  static constexpr Size kSizes[] = {
      {"vit_tiny", 192, 12, 3, 768},     {"vit_small", 384, 12, 6, 1536},  {"vit_base", 768, 12, 12, 3072},
      {"vit_large", 1024, 24, 16, 4096}, {"vit_huge", 1280, 32, 16, 5120}, {"vit_giant", 1408, 40, 16, 6144},
  };
  for (const Size& s : kSizes) {
    if (name == s.name) return ViTConfig{img_size, patch_size, in_chans, s.dim, s.depth, s.heads, s.mlp_hidden};
  }
  throw std::invalid_argument("unknown model name '" + name + "'");
}

PredictorConfig predictor_for(const ViTConfig& encoder, int64_t predictor_embed_dim, int64_t depth) {
  return PredictorConfig{encoder.grid(), encoder.embed_dim, predictor_embed_dim, depth, encoder.num_heads};
}

}  // namespace ijepa::model
