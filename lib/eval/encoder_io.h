// Encoders in and out: official I-JEPA checkpoints (.pth.tar, state dicts with "module." prefixes), this
// project's own checkpoints (the same layout plus "ijepa"), safetensors files this module exported, and the
// reference initialisation as a baseline. The shape of a model is read from its tensors; only the head count
// is not in them (see infer_vit_config).
#pragma once

#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>

#include "model/state_dict.h"
#include "model/vit.h"

namespace ijepa::eval {

// Which encoder of a checkpoint: the EMA target (what I-JEPA evaluates) or the context encoder.
enum class EncoderChoice { kTarget, kContext };

// "target" | "context"; InputError otherwise.
EncoderChoice parse_encoder_choice(const std::string& name);
std::string to_string(EncoderChoice choice);

// What the user may add about a model; 0 or empty means "infer".
struct ModelHints {
  std::string model_name;  // vit_tiny ... vit_giant: checked against the tensors, and gives the head count
  int64_t patch_size = 0;  // checked against patch_embed.proj.weight
  int64_t num_heads = 0;   // needed for widths outside the reference's size table
};

// The encoder's shape from its state dict (keys with or without "module."): width and patch size from
// patch_embed.proj.weight [D, C, p, p], grid from pos_embed [1, G*G, D] (img_size = G*p), depth from the block
// count, MLP width from blocks.0.mlp.fc1.weight. Heads: hints.num_heads, else the preset of hints.model_name,
// else the reference's size table by width. Throws InputError naming `what` when tensors are missing, a hint
// contradicts them ("model mismatch"), or the heads cannot be known.
model::ViTConfig infer_vit_config(const model::GenericDict& state_dict, const ModelHints& hints,
                                  const std::string& what);

// The reference name of a shape (vit_tiny, ...) when width, depth, heads and MLP width match one; else "".
std::string preset_name(const model::ViTConfig& config);

struct ImportedEncoder {
  model::VisionTransformer encoder{nullptr};  // on the CPU, frozen (requires_grad off)
  std::string format;                         // "ijepa", "reference" or "safetensors"
  int64_t epoch = -1;                         // epochs completed, when the file says
  // The predictor trained beside it, when the file has one (random_encoder needs it to redraw this shape).
  std::optional<model::PredictorConfig> predictor;
};

// Loads `which` encoder from a .pth.tar checkpoint (reference or ours) or a .safetensors export (which holds the
// one encoder its metadata "encoder" names, the target without it). Throws InputError naming the file when it is
// missing, unreadable, corrupt, lacks that encoder, or does not fit.
ImportedEncoder import_encoder(const std::string& path, EncoderChoice which, const ModelHints& hints = {});

// The encoder that training with meta.seed = `seed` starts from: the reference initialisation of `config`
// together with `predictor` (the encoder's last initialisation pass draws after the predictor's, so the
// predictor's shape matters). The global generator's state is restored afterwards.
model::VisionTransformer random_encoder(const model::ViTConfig& config, const model::PredictorConfig& predictor,
                                        uint64_t seed = 0);

// Writes the encoder's tensors under the reference's names (patch_embed.proj.weight, pos_embed, blocks.0...,
// norm.*; no "module." prefix) with its shape in __metadata__ (img_size, patch_size, in_chans, embed_dim,
// depth, num_heads, mlp_hidden, model_name) plus `extra` entries.
void export_safetensors(model::VisionTransformer& encoder, const std::string& path,
                        const std::map<std::string, std::string>& extra = {});

}  // namespace ijepa::eval
