#include "eval/command.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <iomanip>
#include <optional>

#include "common/config.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/log.h"
#include "data/dataset.h"
#include "model/autocast.h"
#include "model/vit_config.h"

namespace ijepa::eval {

namespace {

using nlohmann::json;

void check_modes(const EvalCommandOptions& o) {
  if (o.raw_pixels && (o.random_init || !o.checkpoint.empty())) {
    throw common::InputError("--raw-pixels takes neither --checkpoint nor --random-init");
  }
  if (!o.raw_pixels && !o.random_init && o.checkpoint.empty()) {
    throw common::InputError("give --checkpoint PATH, --random-init or --raw-pixels");
  }
  if (!o.export_safetensors.empty() && (o.checkpoint.empty() || o.random_init)) {
    throw common::InputError("--export-safetensors needs --checkpoint (and no --random-init)");
  }
  if (!o.export_safetensors.empty()) {
    const auto folder = std::filesystem::path(o.export_safetensors).parent_path();
    common::require_path("--export-safetensors: folder", folder.empty() ? "." : folder.string(),
                         common::PathKind::kFolder);
  }
  if (o.dataset.empty() && o.export_safetensors.empty()) throw common::InputError("--dataset: required to evaluate");
  if (!o.dataset.empty() && o.data_path.empty()) throw common::InputError("--data-path: required with --dataset");
  // Checked before minutes of feature extraction, not after.
  const auto& e = o.eval;
  for (const auto& [flag, value] : {std::pair{"--epochs", e.linear.epochs},
                                    {"--probe-batch-size", e.linear.batch_size},
                                    {"--batch-size", e.batch_size},
                                    {"--k", e.knn.k}}) {
    if (value <= 0) throw common::InputError(std::string(flag) + ": must be positive, got " + std::to_string(value));
  }
  for (const auto& [flag, value] : {std::pair{"--lr", e.linear.lr}, {"--temperature", e.knn.temperature}}) {
    if (!(value > 0)) throw common::InputError(std::string(flag) + ": must be positive, got " + std::to_string(value));
  }
  if (!(e.linear.weight_decay >= 0)) {
    throw common::InputError("--weight-decay: must not be negative, got " + std::to_string(e.linear.weight_decay));
  }
  for (const auto& [flag, value] : {std::pair{"--max-train", e.max_train_samples},
                                    {"--max-test", e.max_test_samples},
                                    {"--crop-size", o.crop_size},
                                    {"--patch-size", o.hints.patch_size},
                                    {"--num-heads", o.hints.num_heads}}) {
    if (value < 0) throw common::InputError(std::string(flag) + ": must not be negative, got " + std::to_string(value));
  }
}

torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available()) throw common::InputError("--device cuda: no CUDA device is available");
    return torch::kCUDA;
  }
  throw common::InputError("--device: '" + name + "' is not one of cpu, cuda");
}

bool parse_bf16(const std::string& dtype) {
  if (dtype == "fp32" || dtype == "bf16") return dtype == "bf16";
  throw common::InputError("--dtype: '" + dtype + "' is not one of fp32, bf16");
}

// The side of the dataset's (square) images, from its first sample.
int64_t native_size(const data::Dataset& dataset) {
  data::Image image;
  try {
    image = dataset.load(0);
  } catch (const data::CorruptSample& e) {
    throw common::InputError(e.what());
  }
  if (image.height != image.width) {
    throw common::InputError("--crop-size: the first image (" + dataset.name(0) + ") is " +
                             std::to_string(image.height) + "x" + std::to_string(image.width) +
                             ", not square; pass --crop-size");
  }
  return image.height;
}

model::PredictorConfig default_predictor(const model::ViTConfig& encoder) {
  const common::MetaConfig meta;  // the trainer's defaults
  return model::predictor_for(encoder, meta.pred_emb_dim, meta.pred_depth);
}

model::VisionTransformer random_init_encoder(const EvalCommandOptions& o, const std::optional<ImportedEncoder>& from,
                                             const data::Dataset& train) {
  if (from) {
    if (!from->predictor) {
      log::warn("--random-init: " + o.checkpoint + " holds no predictor; drawing as if beside the default one");
    }
    const auto& config = from->encoder->config();
    return random_encoder(config, from->predictor.value_or(default_predictor(config)), o.seed);
  }
  if (o.hints.model_name.empty()) throw common::InputError("--random-init: give --checkpoint or --model");
  const int64_t crop = o.crop_size > 0 ? o.crop_size : native_size(train);
  const int64_t patch = o.hints.patch_size > 0 ? o.hints.patch_size : common::MaskConfig{}.patch_size;
  if (crop % patch != 0) {
    throw common::InputError("--patch-size " + std::to_string(patch) + " does not divide the image size " +
                             std::to_string(crop));
  }
  model::ViTConfig config;
  try {
    config = model::vit_preset(o.hints.model_name, crop, patch, train.channels());
  } catch (const std::invalid_argument&) {
    throw common::InputError("--model: unknown model name '" + o.hints.model_name + "'");
  }
  if (o.hints.num_heads > 0) config.num_heads = o.hints.num_heads;
  return random_encoder(config, default_predictor(config), o.seed);
}

json model_json(const model::ViTConfig& c) {
  return {{"name", preset_name(c)},   {"img_size", c.img_size},    {"patch_size", c.patch_size},
          {"in_chans", c.in_chans},   {"embed_dim", c.embed_dim},  {"depth", c.depth},
          {"num_heads", c.num_heads}, {"mlp_hidden", c.mlp_hidden}};
}

void add_result(json& report, const EvalResult& r, const EvalOptions& eval) {
  report["train_samples"] = r.train_samples;
  report["test_samples"] = r.test_samples;
  report["train_skipped"] = r.train_skipped;
  report["test_skipped"] = r.test_skipped;
  report["feature_dim"] = r.feature_dim;
  report["num_classes"] = r.num_classes;
  report["feature_seconds"] = r.feature_seconds;
  if (r.linear_top1) {
    report["linear"] = {{"top1", *r.linear_top1},
                        {"train_top1", *r.linear_train_top1},
                        {"epochs", eval.linear.epochs},
                        {"batch_size", eval.linear.batch_size},
                        {"lr", eval.linear.lr},
                        {"weight_decay", eval.linear.weight_decay},
                        {"batchnorm", eval.linear.batchnorm},
                        {"seconds", r.linear_seconds}};
  }
  if (r.knn_top1) {
    report["knn"] = {
        {"top1", *r.knn_top1}, {"k", eval.knn.k}, {"temperature", eval.knn.temperature}, {"seconds", r.knn_seconds}};
  }
}

void print_human(const json& report, std::ostream& out) {
  out << std::fixed << std::setprecision(2);
  if (report.contains("exported")) out << "exported " << report["exported"].get<std::string>() << "\n";
  if (!report.contains("train_samples")) return;
  out << report["source"].get<std::string>() << " features (" << report["feature_dim"].get<int64_t>() << "-d) on "
      << report["dataset"].get<std::string>() << ": " << report["train_samples"].get<int64_t>() << " train, "
      << report["test_samples"].get<int64_t>() << " test";
  const auto train_skipped = report["train_skipped"].get<int64_t>();
  const auto test_skipped = report["test_skipped"].get<int64_t>();
  if (train_skipped + test_skipped > 0) {
    out << " (unreadable, each replaced by its next readable neighbour: " << train_skipped << " train, " << test_skipped
        << " test)";
  }
  out << "\n";
  if (report.contains("linear")) {
    const auto& l = report["linear"];
    out << "linear probe top-1: " << 100 * l["top1"].get<double>() << "% (train " << 100 * l["train_top1"].get<double>()
        << "%, " << l["epochs"].get<int64_t>() << " epochs" << (l["batchnorm"].get<bool>() ? ", batchnorm" : "")
        << ")\n";
  }
  if (report.contains("knn")) {
    const auto& k = report["knn"];
    out << "knn top-1: " << 100 * k["top1"].get<double>() << "% (k " << k["k"].get<int64_t>() << ", temperature "
        << k["temperature"].get<double>() << ")\n";
  }
}

// The probe options of the command line, parsed and checked.
EvalOptions eval_options(const EvalCommandOptions& o) {
  EvalOptions eval = o.eval;
  eval.protocol = parse_protocol(o.protocol);
  eval.pooling = parse_pooling(o.pooling);
  eval.device = parse_device(o.device);
  eval.bf16 = parse_bf16(o.dtype);
  if (eval.bf16 && model::bf16_is_slow(eval.device.type()))
    log::warn(std::string("--dtype bf16: ") + model::kSlowBf16Reason);
  return eval;
}

// Probes the dataset's features (of the encoder, or raw pixels) and adds the results to the report.
void evaluate_dataset(const EvalCommandOptions& o, const EvalOptions& eval,
                      const std::optional<ImportedEncoder>& imported, json& report) {
  auto train = data::open_dataset(o.dataset, o.data_path, "train");
  auto test = data::open_dataset(o.dataset, o.data_path, "test");
  report["dataset"] = o.dataset;
  report["data_path"] = o.data_path;
  report["protocol"] = to_string(eval.protocol);
  report["device"] = o.device;
  report["dtype"] = o.dtype;
  EvalResult result;
  if (o.raw_pixels) {
    const int64_t crop = o.crop_size > 0 ? o.crop_size : native_size(*train);
    report["crop_size"] = crop;
    result = evaluate_pixels(train, test, crop, eval);
  } else {
    auto encoder = o.random_init ? random_init_encoder(o, imported, *train) : imported->encoder;
    encoder->to(eval.device);
    report["model"] = model_json(encoder->config());
    report["pooling"] = to_string(eval.pooling);
    if (o.random_init) report["seed"] = o.seed;
    result = evaluate(encoder, train, test, eval);
  }
  add_result(report, result, eval);
}

}  // namespace

int run_eval_command(const EvalCommandOptions& o, std::ostream& out, std::ostream& err) {
  check_modes(o);
  EvalOptions eval = eval_options(o);
  const EncoderChoice which = parse_encoder_choice(o.encoder);
  if (o.threads > 0) torch::set_num_threads(static_cast<int>(o.threads));
  ProgressBar bar(err);
  if (o.progress) eval.progress = bar.callback();

  json report = {{"source", o.raw_pixels ? "raw_pixels" : (o.random_init ? "random_init" : "checkpoint")}};
  std::optional<ImportedEncoder> imported;
  if (!o.checkpoint.empty()) {
    imported = import_encoder(o.checkpoint, which, o.hints);
    report["checkpoint"] = {{"path", o.checkpoint}, {"format", imported->format}, {"epoch", imported->epoch}};
    report["encoder"] = to_string(which);
    log::info(
        log::str("loaded the ", to_string(which), " encoder of ", o.checkpoint, " (", imported->format, " format)"));
  }
  if (!o.export_safetensors.empty()) {
    export_safetensors(imported->encoder, o.export_safetensors, {{"encoder", to_string(which)}});
    report["exported"] = o.export_safetensors;
    log::info("wrote " + o.export_safetensors);
  }
  if (!o.dataset.empty()) evaluate_dataset(o, eval, imported, report);
  if (o.json) {
    out << report.dump(1) << "\n";
  } else {
    print_human(report, out);
  }
  return 0;
}

}  // namespace ijepa::eval
