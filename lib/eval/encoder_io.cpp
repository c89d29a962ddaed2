#include "eval/encoder_io.h"

#include <ATen/CPUGeneratorImpl.h>

#include <charconv>
#include <cmath>
#include <filesystem>

#include "common/errors.h"
#include "common/files.h"
#include "eval/safetensors.h"
#include "model/checkpoint_file.h"
#include "model/init.h"
#include "model/vit_config.h"

namespace ijepa::eval {

namespace {

const char* const kPresetNames[] = {"vit_tiny", "vit_small", "vit_base", "vit_large", "vit_huge", "vit_giant"};

// Building a module draws PyTorch's default initialisation from the global generator; importing a model must
// not shift the random stream of a caller (the trainer evaluates between steps).
class GlobalGeneratorGuard {
 public:
  GlobalGeneratorGuard() : generator_(at::detail::getDefaultCPUGenerator()), state_(generator_.get_state()) {}
  ~GlobalGeneratorGuard() { generator_.set_state(state_); }
  GlobalGeneratorGuard(const GlobalGeneratorGuard&) = delete;
  GlobalGeneratorGuard& operator=(const GlobalGeneratorGuard&) = delete;

 private:
  at::Generator generator_;
  at::Tensor state_;
};

torch::Tensor need(const std::map<std::string, torch::Tensor>& tensors, const std::string& key, int64_t dims,
                   const std::string& what) {
  auto it = tensors.find(key);
  if (it == tensors.end()) throw common::InputError(what + ": no tensor '" + key + "' (not a ViT encoder?)");
  if (it->second.dim() != dims) {
    throw common::InputError(what + ": '" + key + "' has shape " + c10::str(it->second.sizes()) + ", expected " +
                             std::to_string(dims) + " dimensions");
  }
  return it->second;
}

model::ViTConfig preset_or_throw(const std::string& name, const model::ViTConfig& shape) {
  try {
    return model::vit_preset(name, shape.img_size, shape.patch_size, shape.in_chans);
  } catch (const std::invalid_argument&) {
    throw common::InputError("--model: unknown model name '" + name + "' (expected vit_tiny ... vit_giant)");
  }
}

int64_t heads_for_width(int64_t width) {
  for (const char* name : kPresetNames) {
    const auto preset = model::vit_preset(name, 224, 16, 3);
    if (preset.embed_dim == width) return preset.num_heads;
  }
  return 0;
}

int64_t count_blocks(const std::map<std::string, torch::Tensor>& tensors, const std::string& prefix) {
  int64_t n = 0;
  while (tensors.count(prefix + std::to_string(n) + ".norm1.weight")) ++n;
  return n;
}

// The predictor beside an encoder, when the checkpoint has one: its width and depth fix how many numbers its
// initialisation draws, which the encoder's final initialisation pass comes after.
std::optional<model::PredictorConfig> infer_predictor(const c10::impl::GenericDict& checkpoint,
                                                      const model::ViTConfig& encoder, const std::string& path) {
  if (!checkpoint.contains("predictor") || !checkpoint.at("predictor").isGenericDict()) return std::nullopt;
  const auto tensors =
      model::tensors_by_name(checkpoint.at("predictor").toGenericDict(), "checkpoint " + path + ", predictor");
  auto it = tensors.find("predictor_embed.weight");
  if (it == tensors.end() || it->second.dim() != 2) return std::nullopt;
  return model::predictor_for(encoder, it->second.size(0), count_blocks(tensors, "predictor_blocks."));
}

void freeze(model::VisionTransformer& encoder) {
  for (auto& p : encoder->parameters()) p.set_requires_grad(false);
  encoder->eval();
}

}  // namespace

EncoderChoice parse_encoder_choice(const std::string& name) {
  if (name == "target") return EncoderChoice::kTarget;
  if (name == "context") return EncoderChoice::kContext;
  throw common::InputError("--encoder: '" + name + "' is not one of target, context");
}

std::string to_string(EncoderChoice choice) { return choice == EncoderChoice::kTarget ? "target" : "context"; }

model::ViTConfig infer_vit_config(const model::GenericDict& state_dict, const ModelHints& hints,
                                  const std::string& what) {
  const auto tensors = model::tensors_by_name(state_dict, what);
  const auto proj = need(tensors, "patch_embed.proj.weight", 4, what);  // [D, C, p, p]
  const auto pos = need(tensors, "pos_embed", 3, what);                 // [1, G*G, D]
  model::ViTConfig c;
  c.embed_dim = proj.size(0);
  c.in_chans = proj.size(1);
  c.patch_size = proj.size(2);
  const auto grid = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(pos.size(1)))));
  if (proj.size(3) != c.patch_size || grid * grid != pos.size(1) || pos.size(2) != c.embed_dim) {
    throw common::InputError(what + ": patch_embed.proj.weight " + c10::str(proj.sizes()) + " and pos_embed " +
                             c10::str(pos.sizes()) + " do not describe square patches on a square grid");
  }
  c.img_size = grid * c.patch_size;
  c.depth = count_blocks(tensors, "blocks.");
  if (c.depth == 0) throw common::InputError(what + ": no transformer blocks (blocks.0.*)");
  c.mlp_hidden = need(tensors, "blocks.0.mlp.fc1.weight", 2, what).size(0);
  // Empty tensors are valid in a file but describe no model (a zero patch or grid would divide by zero). With every
  // size at least 1, each is bounded by the numbers the file really holds, so their products cannot overflow.
  for (const auto& [name, size] : {std::pair{"width", c.embed_dim},
                                   {"channel count", c.in_chans},
                                   {"patch size", c.patch_size},
                                   {"token grid", grid},
                                   {"MLP width", c.mlp_hidden}}) {
    if (size < 1) throw common::InputError(what + ": the encoder's " + std::string(name) + " is 0 (empty tensors)");
  }

  if (hints.patch_size != 0 && hints.patch_size != c.patch_size) {
    throw common::InputError("model mismatch: --patch-size " + std::to_string(hints.patch_size) + " but " + what +
                             " has patches of " + std::to_string(c.patch_size));
  }
  c.num_heads = hints.num_heads;
  if (!hints.model_name.empty()) {
    const auto preset = preset_or_throw(hints.model_name, c);
    if (preset.embed_dim != c.embed_dim || preset.depth != c.depth) {
      throw common::InputError("model mismatch: " + hints.model_name + " has width " +
                               std::to_string(preset.embed_dim) + " and depth " + std::to_string(preset.depth) + ", " +
                               what + " has width " + std::to_string(c.embed_dim) + " and depth " +
                               std::to_string(c.depth));
    }
    if (c.num_heads == 0) c.num_heads = preset.num_heads;
  }
  if (c.num_heads == 0) c.num_heads = heads_for_width(c.embed_dim);
  if (c.num_heads == 0) {
    throw common::InputError(what + ": width " + std::to_string(c.embed_dim) +
                             " is not one of the reference's sizes, so its head count is unknown; pass --num-heads");
  }
  if (c.embed_dim % c.num_heads != 0) {
    throw common::InputError("model mismatch: width " + std::to_string(c.embed_dim) + " of " + what +
                             " is not divisible by " + std::to_string(c.num_heads) + " heads");
  }
  return c;
}

std::string preset_name(const model::ViTConfig& config) {
  for (const char* name : kPresetNames) {
    const auto p = model::vit_preset(name, config.img_size, config.patch_size, config.in_chans);
    if (p.embed_dim == config.embed_dim && p.depth == config.depth && p.num_heads == config.num_heads &&
        p.mlp_hidden == config.mlp_hidden) {
      return name;
    }
  }
  return "";
}

namespace {

// An encoder's tensors and what the file says about them, before the model is built.
struct EncoderFile {
  model::GenericDict tensors{c10::StringType::get(), c10::TensorType::get()};
  std::string what;  // "checkpoint PATH[, KEY]", for messages
  ModelHints hints;
  std::string format;
  int64_t epoch = -1;
  std::optional<c10::impl::GenericDict> checkpoint;  // the whole .pth.tar, when it is one
};

// A safetensors export holds one encoder; its metadata says which (a file without it is taken to hold the target
// encoder) and its head count.
EncoderFile read_safetensors_encoder(const std::string& path, EncoderChoice which, const ModelHints& hints) {
  EncoderFile file;
  file.what = "checkpoint " + path;
  file.hints = hints;
  file.format = "safetensors";
  auto contents = read_safetensors(path);
  const auto held = contents.metadata.find("encoder");
  const std::string encoder = held == contents.metadata.end() ? to_string(EncoderChoice::kTarget) : held->second;
  if (encoder != to_string(which)) {
    throw common::InputError(file.what + ": holds the " + encoder + " encoder only, not the " + to_string(which) +
                             " one (--encoder)");
  }
  for (auto& [name, tensor] : contents.tensors) file.tensors.insert(name, tensor);
  const auto heads = contents.metadata.find("num_heads");
  if (file.hints.num_heads == 0 && heads != contents.metadata.end()) {
    int64_t value = 0;
    const auto& text = heads->second;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value <= 0) {
      throw common::InputError(file.what + ": __metadata__ num_heads '" + text + "' is not a positive integer");
    }
    file.hints.num_heads = value;
  }
  return file;
}

// A .pth.tar checkpoint, the reference's or ours: `which` encoder's state dict among the others.
EncoderFile read_checkpoint_encoder(const std::string& path, EncoderChoice which, const ModelHints& hints) {
  EncoderFile file;
  file.what = "checkpoint " + path;
  file.hints = hints;
  file.checkpoint = model::read_checkpoint_file(path).content;
  const auto& checkpoint = *file.checkpoint;
  const std::string key = which == EncoderChoice::kTarget ? "target_encoder" : "encoder";
  if (!checkpoint.contains(key) || !checkpoint.at(key).isGenericDict()) {
    throw common::InputError(file.what + ": no '" + key + "' state dict (not an I-JEPA checkpoint?)");
  }
  file.tensors = checkpoint.at(key).toGenericDict();
  file.what += ", " + key;
  file.format = checkpoint.contains("ijepa") ? "ijepa" : "reference";
  if (checkpoint.contains("epoch") && checkpoint.at("epoch").isInt()) file.epoch = checkpoint.at("epoch").toInt();
  return file;
}

}  // namespace

ImportedEncoder import_encoder(const std::string& path, EncoderChoice which, const ModelHints& hints) {
  common::require_path("checkpoint", path, common::PathKind::kFile);
  const EncoderFile file = std::filesystem::path(path).extension() == ".safetensors"
                               ? read_safetensors_encoder(path, which, hints)
                               : read_checkpoint_encoder(path, which, hints);
  const auto config = infer_vit_config(file.tensors, file.hints, file.what);
  ImportedEncoder out;
  out.format = file.format;
  out.epoch = file.epoch;
  if (file.checkpoint) out.predictor = infer_predictor(*file.checkpoint, config, path);
  {
    GlobalGeneratorGuard guard;
    out.encoder = model::VisionTransformer(config);
  }
  model::load_state_dict(*out.encoder, file.tensors, file.what);
  freeze(out.encoder);
  return out;
}

model::VisionTransformer random_encoder(const model::ViTConfig& config, const model::PredictorConfig& predictor,
                                        uint64_t seed) {
  GlobalGeneratorGuard guard;
  torch::manual_seed(seed);
  auto encoder = model::build_models(config, predictor).encoder;
  freeze(encoder);
  return encoder;
}

void export_safetensors(model::VisionTransformer& encoder, const std::string& path,
                        const std::map<std::string, std::string>& extra) {
  NamedTensors tensors;
  for (const auto& e : model::state_dict(*encoder, ""))
    tensors.emplace_back(e.key().toStringRef(), e.value().toTensor());
  const auto& c = encoder->config();
  std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"img_size", std::to_string(c.img_size)},
      {"patch_size", std::to_string(c.patch_size)},
      {"in_chans", std::to_string(c.in_chans)},
      {"embed_dim", std::to_string(c.embed_dim)},
      {"depth", std::to_string(c.depth)},
      {"num_heads", std::to_string(c.num_heads)},
      {"mlp_hidden", std::to_string(c.mlp_hidden)},
      {"model_name", preset_name(c)},
  };
  for (const auto& [key, value] : extra) metadata[key] = value;
  write_safetensors(path, tensors, metadata);
}

}  // namespace ijepa::eval
