// Config validation: every value checked against what the run can use, all problems reported together with
// their key paths (validate), before any work starts.
#include "common/config.h"

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "common/checks.h"
#include "common/errors.h"
#include "common/files.h"
#include "masking/block_geometry.h"
#include "model/vit_config.h"

namespace ijepa::common {

namespace {

bool is_placeholder(const std::string& path) { return path.rfind("$replace_this", 0) == 0; }

void check_range(std::vector<std::string>& errors, const std::string& path, const Range& r, double lo, double hi) {
  if (!(r[0] >= lo && r[1] <= hi && r[0] <= r[1])) {
    std::ostringstream msg;
    msg << path << ": [" << r[0] << ", " << r[1] << "] must satisfy " << lo << " <= min <= max <= " << hi;
    errors.push_back(msg.str());
  }
}

void check_positive(std::vector<std::string>& errors, const std::string& path, double value) {
  if (!(value > 0)) {
    std::ostringstream msg;
    msg << path << ": must be positive, got " << value;
    errors.push_back(msg.str());
  }
}

void check_non_negative(std::vector<std::string>& errors, const std::string& path, double value) {
  if (!(value >= 0)) {
    std::ostringstream msg;
    msg << path << ": must not be negative, got " << value;
    errors.push_back(msg.str());
  }
}

void check_one_of(std::vector<std::string>& errors, const std::string& path, const std::string& value,
                  const std::vector<std::string>& allowed) {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  errors.push_back(path + ": '" + value + "' is not one of " + list);
}

void validate_data(const DataConfig& d, std::vector<std::string>& errors) {
  check_positive(errors, "data.batch_size", static_cast<double>(d.batch_size));
  check_positive(errors, "data.crop_size", static_cast<double>(d.crop_size));
  check_range(errors, "data.crop_scale", d.crop_scale, 1e-6, 1.0);
  check_non_negative(errors, "data.num_workers", static_cast<double>(d.num_workers));
  check_positive(errors, "data.prefetch_batches", static_cast<double>(d.prefetch_batches));
  check_one_of(errors, "data.dataset", d.dataset, {"imagefolder", "idx", "cifar10", "cifar100"});
  check_one_of(errors, "data.split", d.split, {"train", "test"});
  if (d.use_color_distortion || d.use_gaussian_blur || d.use_horizontal_flip) {
    errors.push_back(
        "data.use_color_distortion/use_gaussian_blur/use_horizontal_flip: not supported (I-JEPA trains "
        "without them; every released config sets them false)");
  }
  for (const auto& [key, value] : {std::pair{"data.root_path", d.root_path}, {"data.image_folder", d.image_folder}}) {
    if (is_placeholder(value)) errors.push_back(std::string(key) + ": still the placeholder '" + value + "'");
  }
  const std::string path = dataset_path(d);
  if (path.empty()) {
    errors.push_back("data.root_path: no dataset given (set data.root_path and/or data.image_folder)");
  } else if (!is_placeholder(d.root_path) && !is_placeholder(d.image_folder)) {
    // Every kind of dataset is a folder (of class folders, of IDX files, of CIFAR batches).
    const std::string problem = path_problem(path, PathKind::kFolder);
    if (!problem.empty()) errors.push_back("data.root_path/image_folder: dataset '" + path + "' " + problem);
  }
}

void validate_mask(const Config& c, std::vector<std::string>& errors) {
  const MaskConfig& m = c.mask;
  const size_t errors_before = errors.size();
  check_positive(errors, "mask.patch_size", static_cast<double>(m.patch_size));
  check_range(errors, "mask.enc_mask_scale", m.enc_mask_scale, 1e-6, 1.0);
  check_range(errors, "mask.pred_mask_scale", m.pred_mask_scale, 1e-6, 1.0);
  check_range(errors, "mask.aspect_ratio", m.aspect_ratio, 1e-6, 1e6);
  check_positive(errors, "mask.num_enc_masks", static_cast<double>(m.num_enc_masks));
  check_positive(errors, "mask.num_pred_masks", static_cast<double>(m.num_pred_masks));
  check_non_negative(errors, "mask.min_keep", static_cast<double>(m.min_keep));
  check_one_of(errors, "mask.mode", m.mode, {"reference", "corrected"});
  if (m.patch_size <= 0 || c.data.crop_size <= 0) return;
  if (c.data.crop_size % m.patch_size != 0) {
    errors.push_back("mask.patch_size: data.crop_size " + std::to_string(c.data.crop_size) +
                     " is not divisible by the patch size " + std::to_string(m.patch_size));
    return;
  }
  const int64_t grid = c.data.crop_size / m.patch_size;
  if (grid < 2) errors.push_back("mask.patch_size: the patch grid must be at least 2x2, got " + std::to_string(grid));
  if (m.min_keep >= grid * grid) {
    errors.push_back("mask.min_keep: " + std::to_string(m.min_keep) + " is not smaller than the " +
                     std::to_string(grid) + "x" + std::to_string(grid) + " patch grid");
    return;
  }
  if (errors.size() != errors_before) return;  // the block sizes need valid scales and aspects
  const masking::BlockRange pred{m.pred_mask_scale[0], m.pred_mask_scale[1], m.aspect_ratio[0], m.aspect_ratio[1]};
  const masking::BlockRange enc{m.enc_mask_scale[0], m.enc_mask_scale[1], 1.0, 1.0};  // the context block is square
  for (std::string& problem : masking::unreachable_block_problems(grid, grid, m.min_keep, pred, enc))
    errors.push_back(std::move(problem));
}

// The predictor's width splits into the encoder's heads, and into 4 for its 2D sin-cos table.
void check_predictor_width(const MetaConfig& m, std::vector<std::string>& errors) {
  if (m.pred_emb_dim <= 0) return;
  int64_t heads = 0;
  try {
    heads = model::vit_preset(m.model_name, 224, 16, 3).num_heads;  // the head count is the same at any size
  } catch (const std::invalid_argument&) {
    return;  // meta.model_name is reported
  }
  if (m.pred_emb_dim % 4 != 0 || m.pred_emb_dim % heads != 0) {
    errors.push_back("meta.pred_emb_dim: " + std::to_string(m.pred_emb_dim) + " must be divisible by 4 and by " +
                     m.model_name + "'s " + std::to_string(heads) + " heads");
  }
}

void validate_meta(const MetaConfig& m, std::vector<std::string>& errors) {
  check_one_of(errors, "meta.model_name", m.model_name,
               {"vit_tiny", "vit_small", "vit_base", "vit_large", "vit_huge", "vit_giant"});
  check_positive(errors, "meta.pred_depth", static_cast<double>(m.pred_depth));
  check_positive(errors, "meta.pred_emb_dim", static_cast<double>(m.pred_emb_dim));
  check_predictor_width(m, errors);
  check_one_of(errors, "meta.device", m.device, {"auto", "cpu", "cuda"});
  check_non_negative(errors, "meta.threads", static_cast<double>(m.threads));
  check_non_negative(errors, "meta.seed", static_cast<double>(m.seed));
  // The reference ignores read_checkpoint then and starts afresh: a checkpoint asked for is never silently skipped.
  if (!m.read_checkpoint.empty() && !m.load_checkpoint) {
    errors.push_back("meta.read_checkpoint: '" + m.read_checkpoint +
                     "' is set but meta.load_checkpoint is false, which would start afresh; set "
                     "meta.load_checkpoint=true to resume from it, or leave meta.read_checkpoint empty");
  }
}

void validate_optimization(const OptimizationConfig& o, std::vector<std::string>& errors) {
  check_positive(errors, "optimization.epochs", static_cast<double>(o.epochs));
  check_positive(errors, "optimization.lr", o.lr);
  check_non_negative(errors, "optimization.start_lr", o.start_lr);
  check_non_negative(errors, "optimization.final_lr", o.final_lr);
  check_non_negative(errors, "optimization.warmup", o.warmup);
  check_positive(errors, "optimization.ipe_scale", o.ipe_scale);
  check_non_negative(errors, "optimization.weight_decay", o.weight_decay);
  check_non_negative(errors, "optimization.final_weight_decay", o.final_weight_decay);
  check_range(errors, "optimization.ema", o.ema, 0.0, 1.0);
  check_non_negative(errors, "optimization.max_steps", static_cast<double>(o.max_steps));
  if (o.epochs > 0 && o.warmup > static_cast<double>(o.epochs) * o.ipe_scale) {
    errors.push_back("optimization.warmup: warmup epochs exceed epochs * ipe_scale");
  }
}

void validate_logging(const Config& c, std::vector<std::string>& errors) {
  if (c.logging.folder.empty()) errors.push_back("logging.folder: no run folder given");
  if (is_placeholder(c.logging.folder))
    errors.push_back("logging.folder: still the placeholder '" + c.logging.folder + "'");
  if (c.logging.write_tag.empty() || c.logging.write_tag.find('/') != std::string::npos) {
    errors.push_back("logging.write_tag: must be a non-empty file name prefix");
  }
  check_positive(errors, "logging.log_every", static_cast<double>(c.logging.log_every));
}

void validate_checkpoint_and_dist(const Config& c, std::vector<std::string>& errors) {
  check_non_negative(errors, "checkpoint.every_steps", static_cast<double>(c.checkpoint.every_steps));
  check_positive(errors, "checkpoint.keep_last", static_cast<double>(c.checkpoint.keep_last));
  check_non_negative(errors, "checkpoint.periodic_epochs", static_cast<double>(c.checkpoint.periodic_epochs));
  check_one_of(errors, "dist.backend", c.dist.backend, {"auto", "single", "mpi", "nccl"});
  check_positive(errors, "dist.bucket_mb", c.dist.bucket_mb);
  check_positive(errors, "dist.first_bucket_mb", c.dist.first_bucket_mb);
  check_positive(errors, "dist.min_buckets", static_cast<double>(c.dist.min_buckets));
  check_non_negative(errors, "dist.target_sync_every", static_cast<double>(c.dist.target_sync_every));
  check_non_negative(errors, "dist.check_every", static_cast<double>(c.dist.check_every));
  check_positive(errors, "dist.timeout_s", c.dist.timeout_s);
}

// Runs CHECK, which throws InputError with a message starting with the key path, and records that message.
template <class Check>
void record_input_error(std::vector<std::string>& errors, Check&& check) {
  try {
    check();
  } catch (const InputError& e) {
    errors.push_back(e.what());
  }
}

void validate_addresses(const Config& c, std::vector<std::string>& errors) {
  const std::string& address = c.coordinator.address;
  if (!address.empty()) {
    record_input_error(errors, [&] {
      if (parse_host_port(address, "coordinator.address").port == 0)
        throw InputError("coordinator.address: '" + address + "' has port 0, which no coordinator listens on");
    });
  }
  if (!c.metrics.listen.empty())
    record_input_error(errors, [&] { parse_host_port(c.metrics.listen, "metrics.listen"); });
}

void validate_token(const CoordinatorConfig& c, std::vector<std::string>& errors) {
  if (c.token == kRedactedToken && !c.address.empty()) {
    errors.push_back("coordinator.token: '" + c.token +
                     "' stands for a token left out when this config was written; give it with "
                     "coordinator.token_file or $IJEPA_COORDINATOR_TOKEN");
  }
  if (const std::string problem = token_problem(c.token); !problem.empty())
    errors.push_back("coordinator.token: " + problem);
}

void validate_coordinator_and_metrics(const Config& c, std::vector<std::string>& errors) {
  check_positive(errors, "coordinator.heartbeat_s", c.coordinator.heartbeat_s);
  check_positive(errors, "coordinator.queue_capacity", static_cast<double>(c.coordinator.queue_capacity));
  validate_addresses(c, errors);
  if (!c.coordinator.run_name.empty() && !is_valid_run_name(c.coordinator.run_name))
    errors.push_back("coordinator.run_name: '" + c.coordinator.run_name + "' " + kRunNameRule);
  validate_token(c.coordinator, errors);
  check_one_of(errors, "metrics.port_offset", c.metrics.port_offset, {"global_rank", "local_rank", "none"});
  for (const auto& [key, path] : {std::pair{"coordinator.tls_ca", c.coordinator.tls_ca},
                                  {"coordinator.tls_cert", c.coordinator.tls_cert},
                                  {"coordinator.tls_key", c.coordinator.tls_key}}) {
    const std::string problem = path.empty() ? "" : path_problem(path, PathKind::kFile);
    if (!problem.empty()) errors.push_back(std::string(key) + ": '" + path + "' " + problem);
  }
  if (c.coordinator.tls_cert.empty() != c.coordinator.tls_key.empty()) {
    errors.push_back("coordinator.tls_cert/tls_key: give both or neither");
  }
}

void validate_eval(const Config& c, std::vector<std::string>& errors) {
  check_non_negative(errors, "eval.every_epochs", static_cast<double>(c.eval.every_epochs));
  check_one_of(errors, "eval.protocol", c.eval.protocol, {"linear", "knn", "both"});
  check_one_of(errors, "eval.pooling", c.eval.pooling, {"avg", "avg4", "grid"});
  check_non_negative(errors, "eval.max_train_samples", static_cast<double>(c.eval.max_train_samples));
  check_non_negative(errors, "eval.max_test_samples", static_cast<double>(c.eval.max_test_samples));
  if (c.eval.baselines && !c.eval.at_end) errors.push_back("eval.baselines: needs eval.at_end: true");
}

}  // namespace

std::string dataset_path(const DataConfig& data) {
  if (data.root_path.empty()) return data.image_folder;
  if (data.image_folder.empty()) return data.root_path;
  return (std::filesystem::path(data.root_path) / data.image_folder).string();
}

std::vector<std::string> validate(const Config& c) {
  std::vector<std::string> errors;
  validate_data(c.data, errors);
  validate_mask(c, errors);
  validate_meta(c.meta, errors);
  validate_optimization(c.optimization, errors);
  validate_logging(c, errors);
  validate_checkpoint_and_dist(c, errors);
  validate_coordinator_and_metrics(c, errors);
  validate_eval(c, errors);
  return errors;
}

}  // namespace ijepa::common
