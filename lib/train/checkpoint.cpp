#include "train/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <optional>
#include <sstream>

#include "common/errors.h"
#include "common/files.h"
#include "common/log.h"
#include "model/checkpoint_file.h"

namespace ijepa::train {

namespace fs = std::filesystem;
using c10::IValue;
using GenericDict = c10::impl::GenericDict;
using GenericList = c10::impl::GenericList;

namespace {

constexpr int64_t kFormatVersion = 1;

GenericDict new_dict(const c10::TypePtr& key = c10::StringType::get()) { return GenericDict(key, c10::AnyType::get()); }

// The reference's optimizer state dict: parameters numbered by their place in its groups' lists.
GenericDict optimizer_state_dict(AdamW& optimizer, double lr, double weight_decay) {
  auto state = new_dict(c10::IntType::get());
  auto groups = GenericList(c10::AnyType::get());
  int64_t id = 0;
  size_t tensor_index = 0;
  for (const auto& g : optimizer.groups()) {
    auto ids = c10::List<int64_t>();
    for (const auto& name : g.reference_names) {
      ids.push_back(id);
      if (std::find(g.names.begin(), g.names.end(), name) != g.names.end()) {
        auto s = new_dict();
        s.insert("step", optimizer.step_count().detach().to(torch::kCPU).clone());
        s.insert("exp_avg", optimizer.exp_avg()[tensor_index]);
        s.insert("exp_avg_sq", optimizer.exp_avg_sq()[tensor_index]);
        state.insert(id, s);
        ++tensor_index;
      }
      ++id;
    }
    auto group = new_dict();
    group.insert("lr", lr);
    group.insert("betas", c10::ivalue::Tuple::create({optimizer.beta1(), optimizer.beta2()}));
    group.insert("eps", optimizer.eps());
    group.insert("weight_decay", g.decay ? weight_decay : 0.0);
    group.insert("amsgrad", false);
    group.insert("foreach", IValue());
    group.insert("maximize", false);
    group.insert("capturable", false);
    group.insert("differentiable", false);
    group.insert("fused", IValue());
    if (!g.decay) group.insert("WD_exclude", true);
    group.insert("params", ids);
    groups.push_back(group);
  }
  auto opt = new_dict();
  opt.insert("state", state);
  opt.insert("param_groups", groups);
  return opt;
}

// state[key] of parameter `name` as a tensor. AdamW's "step" may also be a number (torch before 1.12 saved it so).
torch::Tensor optimizer_tensor(const GenericDict& state, const char* key, const std::string& name,
                               const std::string& path) {
  if (state.contains(key)) {
    const auto& value = state.at(key);
    if (value.isTensor()) return value.toTensor();
    if (value.isInt() || value.isDouble()) return torch::tensor(value.toScalar().toDouble());
  }
  throw common::InputError(path + ": optimizer state of " + name + " has no tensor '" + key + "'");
}

void load_optimizer_state(AdamW& optimizer, const GenericDict& opt, const std::string& path) {
  if (!opt.contains("state") || !opt.at("state").isGenericDict()) {
    throw common::InputError(path + ": 'opt' has no 'state' dictionary");
  }
  const auto state = opt.at("state").toGenericDict();
  torch::NoGradGuard no_grad;
  int64_t id = 0;
  size_t tensor_index = 0;
  bool step_loaded = false;
  for (const auto& g : optimizer.groups()) {
    for (const auto& name : g.reference_names) {
      const bool trainable = std::find(g.names.begin(), g.names.end(), name) != g.names.end();
      if (trainable) {
        if (!state.contains(id) || !state.at(id).isGenericDict()) {
          throw common::InputError(path + ": optimizer state has no entry for " + name);
        }
        const auto s = state.at(id).toGenericDict();
        auto copy = [&](const char* key, torch::Tensor& into) {
          const auto t = optimizer_tensor(s, key, name, path);
          if (t.sizes() != into.sizes()) {
            throw common::InputError(path + ": optimizer " + key + " of " + name + " has shape " + c10::str(t.sizes()) +
                                     ", the model needs " + c10::str(into.sizes()));
          }
          into.copy_(t);
        };
        copy("exp_avg", optimizer.exp_avg()[tensor_index]);
        copy("exp_avg_sq", optimizer.exp_avg_sq()[tensor_index]);
        if (!step_loaded) optimizer.step_count().copy_(optimizer_tensor(s, "step", name, path).reshape({}));
        step_loaded = true;
        ++tensor_index;
      }
      ++id;
    }
  }
}

GenericDict position_dict(const TrainingPosition& p, const CheckpointInfo& info) {
  auto d = new_dict();
  d.insert("format_version", kFormatVersion);
  d.insert("step", p.step);
  d.insert("epoch", p.epoch);
  d.insert("batch_in_epoch", p.batch_in_epoch);
  d.insert("mask_counter", p.mask_counter);
  d.insert("mask_generator_state", p.mask_generator_state.defined() ? IValue(p.mask_generator_state) : IValue());
  d.insert("config", info.config_yaml);
  return d;
}

}  // namespace

GenericDict checkpoint_dict(JepaModels& models, AdamW& optimizer, const TrainingPosition& position,
                            const CheckpointInfo& info) {
  auto d = new_dict();
  d.insert("encoder", model::state_dict(*models.encoder));
  d.insert("predictor", model::state_dict(*models.predictor));
  d.insert("target_encoder", model::state_dict(*models.target));
  d.insert("opt", optimizer_state_dict(optimizer, info.lr, info.weight_decay));
  d.insert("scaler", IValue());
  // The reference stores epoch + 1 after finishing an epoch: the number of completed epochs.
  d.insert("epoch", position.epoch);
  d.insert("loss", position.last_loss);
  d.insert("batch_size", info.batch_size);
  d.insert("world_size", info.world_size);
  d.insert("lr", info.lr);
  d.insert("ijepa", position_dict(position, info));
  model::seal_checkpoint(d);
  return d;
}

namespace {

int64_t int_or(const GenericDict& dict, const char* key, int64_t fallback) {
  return dict.contains(key) && dict.at(key).isInt() ? dict.at(key).toInt() : fallback;
}

double double_or(const GenericDict& dict, const char* key, double fallback) {
  return dict.contains(key) && dict.at(key).isDouble() ? dict.at(key).toDouble() : fallback;
}

GenericDict state_dict_at(const GenericDict& checkpoint, const char* key, const std::string& path) {
  if (!checkpoint.contains(key) || !checkpoint.at(key).isGenericDict()) {
    throw common::InputError("checkpoint " + path + ": no '" + key + "' state dict");
  }
  return checkpoint.at(key).toGenericDict();
}

// Where the run stood, and what it ran with, from the checkpoint's scalars and its "ijepa" entry.
void read_position(const GenericDict& d, const std::string& path, int64_t iterations_per_epoch,
                   LoadedCheckpoint& loaded) {
  auto& p = loaded.position;
  loaded.info.batch_size = int_or(d, "batch_size", 0);
  loaded.info.world_size = int_or(d, "world_size", 1);
  loaded.info.lr = double_or(d, "lr", 0.0);
  p.last_loss = double_or(d, "loss", 0.0);
  if (!d.contains("ijepa")) {
    // The reference resumes at the start of the epoch after the one saved, fast-forwarding the schedules and
    // the mask counter by whole epochs.
    p.epoch = int_or(d, "epoch", 0);
    p.step = p.epoch * iterations_per_epoch;
    p.mask_counter = p.step - 1;
    log::warn(log::str("checkpoint ", path, ": reference format without checksum; resuming at the start of epoch ",
                       p.epoch + 1));
    return;
  }
  const auto x = d.at("ijepa").toGenericDict();
  p.step = int_or(x, "step", 0);
  p.epoch = int_or(x, "epoch", 0);
  p.batch_in_epoch = int_or(x, "batch_in_epoch", 0);
  p.mask_counter = int_or(x, "mask_counter", -1);
  if (x.contains("mask_generator_state") && x.at("mask_generator_state").isTensor()) {
    p.mask_generator_state = x.at("mask_generator_state").toTensor();
  }
  if (x.contains("config")) loaded.info.config_yaml = x.at("config").toStringRef();
}

}  // namespace

LoadedCheckpoint load_checkpoint(const std::string& path, JepaModels& models, AdamW* optimizer,
                                 int64_t iterations_per_epoch) {
  common::require_path("checkpoint", path, common::PathKind::kFile);
  const auto file = model::read_checkpoint_file(path);
  const GenericDict& d = file.content;
  const auto encoder = state_dict_at(d, "encoder", path), predictor = state_dict_at(d, "predictor", path),
             target = state_dict_at(d, "target_encoder", path);
  const std::string what = "checkpoint " + path;
  model::load_state_dict(*models.encoder, encoder, what + ", encoder");
  model::load_state_dict(*models.predictor, predictor, what + ", predictor");
  model::load_state_dict(*models.target, target, what + ", target_encoder");
  if (optimizer && d.contains("opt") && d.at("opt").isGenericDict()) {
    load_optimizer_state(*optimizer, d.at("opt").toGenericDict(), path);
  }
  LoadedCheckpoint loaded;
  loaded.verified = file.verified;
  read_position(d, path, iterations_per_epoch, loaded);
  return loaded;
}

namespace {
constexpr const char* kSuffix = ".pth.tar";

// The number in `name` = tag + infix + digits + ".pth.tar", if it has exactly that form: another run's tag that
// merely starts with this one ("jepa-stepper" for "jepa") is not this run's.
std::optional<int64_t> numbered(const std::string& name, const std::string& tag, const std::string& infix) {
  const std::string prefix = tag + infix, suffix = kSuffix;
  if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return std::nullopt;
  }
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoll(digits);
}

// TAG-stepNNNNNNNN.pth.tar: a rolling step checkpoint of tag.
std::optional<int64_t> rolling_step(const std::string& name, const std::string& tag) {
  return numbered(name, tag, "-step");
}
// TAG-epE.pth.tar: a periodic checkpoint of tag.
bool is_periodic(const std::string& name, const std::string& tag) { return numbered(name, tag, "-ep").has_value(); }
}  // namespace

CheckpointStore::CheckpointStore(std::string folder, std::string tag, int64_t keep_last, int64_t periodic_epochs)
    : folder_(std::move(folder)), tag_(std::move(tag)), keep_last_(keep_last), periodic_epochs_(periodic_epochs) {}

std::string CheckpointStore::latest_path() const { return (fs::path(folder_) / (tag_ + "-latest" + kSuffix)).string(); }

std::vector<fs::path> CheckpointStore::existing() const {
  std::vector<fs::path> found;
  std::error_code error;
  for (fs::directory_iterator it(folder_, error), end; !error && it != end; it.increment(error)) {
    const std::string f = it->path().filename().string();
    const bool ours = f == tag_ + "-latest" + kSuffix || rolling_step(f, tag_) || is_periodic(f, tag_);
    if (ours) found.push_back(it->path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::string CheckpointStore::resolve(const std::string& read_checkpoint) const {
  if (read_checkpoint.empty()) return latest_path();
  if (read_checkpoint.find('/') == std::string::npos) return (fs::path(folder_) / read_checkpoint).string();
  return read_checkpoint;
}

// Keeps the newest keep_last step checkpoints up to `step`, the one just written among them. Those of later steps
// are an abandoned future (this run resumed from an earlier checkpoint): left as they are, each replaced when this
// run writes its own checkpoint of that step, never counted as this run's newest.
void CheckpointStore::remove_old_steps(int64_t step) const {
  std::vector<std::pair<int64_t, fs::path>> steps;
  for (const auto& file : existing()) {
    const auto s = rolling_step(file.filename().string(), tag_);
    if (s && *s <= step) steps.emplace_back(*s, file);
  }
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + static_cast<size_t>(keep_last_) < steps.size(); ++i) fs::remove(steps[i].second);
}

std::string CheckpointStore::save(JepaModels& models, AdamW& optimizer, const TrainingPosition& position,
                                  const CheckpointInfo& info, int64_t epochs_done, bool epoch_end) {
  std::ostringstream name;
  name << tag_ << "-step" << std::setw(8) << std::setfill('0') << position.step << kSuffix;
  const std::string path = (fs::path(folder_) / name.str()).string();
  model::write_torch_file(path, checkpoint_dict(models, optimizer, position, info));
  common::link_file_atomic(path, latest_path());
  if (epoch_end && periodic_epochs_ > 0 && epochs_done % periodic_epochs_ == 0) {
    common::link_file_atomic(path,
                             (fs::path(folder_) / (tag_ + "-ep" + std::to_string(epochs_done) + kSuffix)).string());
  }
  remove_old_steps(position.step);
  return path;
}

}  // namespace ijepa::train
