#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <functional>
#include <optional>

#include "common/clock.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/log.h"
#include "common/malloc_tuning.h"
#include "common/omp_wait.h"
#include "common/signals.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "dist/communicator.h"
#include "dist/consistency.h"
#include "dist/gradient_synchronizer.h"
#include "masking/multiblock.h"
#include "model/autocast.h"
#include "model/state_dict.h"
#include "train/checkpoint.h"
#include "train/csv_log.h"
#include "train/report.h"
#include "train/run_evaluator.h"
#include "train/run_reporter.h"
#include "train/schedules.h"
#include "train/step.h"

namespace ijepa::train {

namespace fs = std::filesystem;
using common::Clock;
using common::seconds_since;

std::string resolve_device(const std::string& wanted) {
  const bool have_gpu = torch::cuda::is_available();
  if (wanted == "cuda" && !have_gpu) throw common::InputError("meta.device: cuda asked for but no GPU is available");
  return wanted == "cuda" || (wanted == "auto" && have_gpu) ? "cuda" : "cpu";
}

const char* to_string(ExitReason reason) {
  switch (reason) {
    case ExitReason::kCompleted:
      return "completed";
    case ExitReason::kMaxSteps:
      return "max_steps";
    case ExitReason::kSignal:
      return "signal";
    case ExitReason::kStopRequested:
      return "stop_requested";
    case ExitReason::kNonFiniteLoss:
      return "non_finite_loss";
  }
  return "unknown";
}

namespace {

// Thrown out of the loop when a logged loss is NaN or infinite: the run stops without checkpointing it.
struct NonFiniteLoss : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The masks of one batch and the sampler's state right after drawing them (for exact resume).
struct MaskAttachment {
  masking::BatchMasks masks;
  int64_t counter = -1;
  torch::Tensor generator_state;
};

masking::MaskSpec mask_spec(const common::Config& c) {
  masking::MaskSpec s;
  s.grid_h = s.grid_w = c.data.crop_size / c.mask.patch_size;
  s.enc_scale_min = c.mask.enc_mask_scale[0];
  s.enc_scale_max = c.mask.enc_mask_scale[1];
  s.pred_scale_min = c.mask.pred_mask_scale[0];
  s.pred_scale_max = c.mask.pred_mask_scale[1];
  s.aspect_min = c.mask.aspect_ratio[0];
  s.aspect_max = c.mask.aspect_ratio[1];
  s.num_enc = c.mask.num_enc_masks;
  s.num_pred = c.mask.num_pred_masks;
  s.min_keep = c.mask.min_keep;
  s.allow_overlap = c.mask.allow_overlap;
  s.corrected = c.mask.mode == "corrected";
  return s;
}

// Rows rank, rank + world, ... of masks drawn for the global batch: every rank sees the masks that a single
// process with the whole batch would give the same images (the sampler's shards are strided the same way).
masking::BatchMasks rank_slice(const masking::BatchMasks& global, int64_t rank, int64_t world) {
  if (world == 1) return global;
  masking::BatchMasks out;
  const auto rows = torch::arange(rank, global.enc[0].size(0), world);
  for (const auto& m : global.enc) out.enc.push_back(m.index_select(0, rows));
  for (const auto& m : global.pred) out.pred.push_back(m.index_select(0, rows));
  return out;
}

// 128 + signal as a shell reports it; a rank stopped because another rank was signalled, or by the
// coordinator, exits as on SIGTERM.
int exit_code_for(ExitReason reason) {
  switch (reason) {
    case ExitReason::kNonFiniteLoss:
      return 1;
    case ExitReason::kSignal:
    case ExitReason::kStopRequested:
      return 128 + (common::stop_signal() != 0 ? common::stop_signal() : SIGTERM);
    case ExitReason::kCompleted:
    case ExitReason::kMaxSteps:
      return 0;
  }
  return 1;
}

torch::OrderedDict<std::string, torch::Tensor> trainable_parameters(JepaModels& m) {
  torch::OrderedDict<std::string, torch::Tensor> out;
  for (const auto& p : m.encoder->named_parameters()) out.insert("encoder." + p.key(), p.value());
  for (const auto& p : m.predictor->named_parameters()) out.insert("predictor." + p.key(), p.value());
  return out;
}

bool all_finite(const std::vector<torch::Tensor>& tensors) {
  return std::all_of(tensors.begin(), tensors.end(),
                     [](const torch::Tensor& t) { return torch::isfinite(t).all().item<bool>(); });
}

// A "section.key: ..." line of a key that shapes the trajectory (data order, masks, model, schedules): changed on
// resume, the run no longer continues as the one that wrote the checkpoint would have. The batch size is warned
// about with the ranks.
bool shapes_training(const std::string& key_line) {
  const std::string key = key_line.substr(0, key_line.find(':'));
  static const std::vector<std::string> sections = {"data.", "mask.", "meta.", "optimization."};
  static const std::vector<std::string> free = {
      "data.root_path",       "data.image_folder", "data.num_workers", "data.prefetch_batches",
      "data.pin_mem",         "data.copy_data",    "data.batch_size",  "meta.load_checkpoint",
      "meta.read_checkpoint", "meta.threads",      "meta.device",      "optimization.max_steps"};
  const bool in_section = std::any_of(sections.begin(), sections.end(),
                                      [&](const std::string& s) { return key.compare(0, s.size(), s) == 0; });
  return in_section && std::find(free.begin(), free.end(), key) == free.end();
}

std::vector<torch::Tensor> all_tensors(JepaModels& m) {
  std::vector<torch::Tensor> out;
  for (auto* module :
       {static_cast<torch::nn::Module*>(m.encoder.get()), static_cast<torch::nn::Module*>(m.predictor.get()),
        static_cast<torch::nn::Module*>(m.target.get())}) {
    for (const auto& p : module->parameters()) out.push_back(p);
  }
  return out;
}

}  // namespace

class Trainer::Impl {
 public:
  Impl(const common::Config& config, dist::Communicator& comm);
  TrainResult run();

 private:
  void resolve_precision();
  void prepare_folder();
  void build_data();
  void build_models();
  void resume();
  int64_t batch_to_resume_at(const std::string& path, const LoadedCheckpoint& loaded) const;
  void warn_about_changed_settings(const std::string& path, const std::string& saved_config) const;
  void refuse_to_replace_earlier_checkpoints() const;
  void remove_earlier_checkpoints() const;
  void share_rank0_state();
  void train_on(data::Batch& batch);
  void end_epoch();
  void keep_ranks_in_step(int64_t step);
  void flush_logs();
  ProgressLine progress_line() const;
  std::optional<ExitReason> stop_reason();
  ExitReason asked_stop_reason() const;
  void evaluate_unless_stopped(const std::function<void()>& evaluate);
  void save_checkpoint(bool epoch_end);
  TrainResult finish(ExitReason reason);
  void write_run_summary(ExitReason reason) const;
  EvalPosition eval_position() const;
  bool log_due() const { return position_.step % config_.logging.log_every == 0; }
  int64_t total_steps() const;

  common::Config config_;
  dist::Communicator& comm_;
  int64_t rank_, world_;
  torch::Device device_;
  std::string folder_;

  std::shared_ptr<const data::Dataset> dataset_;
  std::unique_ptr<data::Loader> loader_;
  std::unique_ptr<masking::MultiBlockMaskSampler> masks_;  // used on the loader's assembling thread only
  JepaModels models_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<dist::GradientSynchronizer> sync_;
  std::unique_ptr<JepaStep> step_;
  std::unique_ptr<Schedules> schedules_;
  std::unique_ptr<CheckpointStore> store_;
  std::unique_ptr<CsvLog> csv_;
  std::unique_ptr<RunReporter> reporter_;
  std::unique_ptr<RunEvaluator> evaluator_;  // when eval.every_epochs or eval.at_end

  TrainingPosition position_;
  int64_t last_saved_step_ = -1;
  std::string last_checkpoint_;
  bool epoch_started_ = false;
  std::optional<ExitReason> stopped_during_eval_;  // every rank's, as the evaluator agrees on it

  // Losses stay on the device until the next flush; rows wait for them.
  std::vector<torch::Tensor> pending_losses_;
  std::vector<CsvRow> pending_rows_;
  std::vector<double> pending_comm_wait_s_;
  double epoch_loss_sum_ = 0;
  int64_t epoch_loss_count_ = 0;
  int64_t steps_this_run_ = 0;
  double train_seconds_ = 0;  // iterations of this run, data wait included
  Clock::time_point started_ = Clock::now();
};

Trainer::Impl::Impl(const common::Config& config, dist::Communicator& comm)
    : config_(config),
      comm_(comm),
      rank_(comm.rank()),
      world_(comm.world_size()),
      device_(comm.device()),
      folder_(config.logging.folder) {
  if (config_.meta.threads > 0) at::set_num_threads(static_cast<int>(config_.meta.threads));
  if (rank_ == 0)
    log::info(log::str(at::get_num_threads(), " intra-op thread(s) per rank, OpenMP wait policy ",
                       common::omp_wait_policy_description(), "; ", common::malloc_tuning_description()));
  resolve_precision();
  dist::verify_same_across_ranks(comm_, "config", common::to_key_lines(config_));  // names the differing key
  {
    // Opening a large image folder or reading a checkpoint may take one rank much longer than another.
    const dist::LocalWork work(comm_.progress(), "preparing the run (data, models, checkpoint)");
    // Everything that can refuse the run (dataset, model, checkpoint, evaluation data, listeners) before anything
    // is written or removed.
    build_data();
    build_models();
    resume();
    reporter_ =
        std::make_unique<RunReporter>(config_, static_cast<int>(rank_), comm_.local_rank(), static_cast<int>(world_));
    if (config_.eval.every_epochs > 0 || config_.eval.at_end)
      evaluator_ = std::make_unique<RunEvaluator>(config_, comm_, *reporter_, dataset_);
    if (!config_.meta.load_checkpoint) remove_earlier_checkpoints();
    prepare_folder();
    const int64_t resumed_step = config_.meta.load_checkpoint ? position_.step : -1;
    if (evaluator_) evaluator_->open_log(resumed_step);
    csv_ = std::make_unique<CsvLog>(
        (fs::path(folder_) / (config_.logging.write_tag + "_r" + std::to_string(rank_) + ".csv")).string(),
        resumed_step);
  }
  share_rank0_state();
}

// Before the configs are compared across ranks (ranks whose CPUs resolve auto differently are named) and saved
// (the run folder records what ran).
void Trainer::Impl::resolve_precision() {
  const bool cpu_native = device_.is_cpu() && model::cpu_has_native_bf16();
  const model::Bf16Choice choice = model::choose_bf16(config_.meta.use_bfloat16, device_.type(), cpu_native);
  config_.meta.use_bfloat16 = choice.enabled ? common::Bf16Mode::kOn : common::Bf16Mode::kOff;
  if (rank_ != 0) return;
  if (choice.slow) {
    log::warn(choice.note);
  } else {
    log::info(choice.note);
  }
}

void Trainer::Impl::prepare_folder() {
  std::error_code error;
  fs::create_directories(folder_, error);
  if (error) throw common::InputError("logging.folder: cannot create " + folder_ + ": " + error.message());
  if (rank_ != 0) return;
  common::write_file_atomic((fs::path(folder_) / "params-ijepa.yaml").string(), common::to_yaml(config_));
}

// A fresh start where checkpoints of this tag already are would take over that run's latest checkpoint, and mix
// its own rolling checkpoints with the earlier run's: refused, unless checkpoint.overwrite asks for them to be
// removed (remove_earlier_checkpoints, once nothing else can refuse the run).
void Trainer::Impl::refuse_to_replace_earlier_checkpoints() const {
  const auto found = store_->existing();
  if (!found.empty() && !config_.checkpoint.overwrite) {
    std::string names;
    for (size_t i = 0; i < found.size() && i < 3; ++i) names += (i ? ", " : "") + found[i].filename().string();
    if (found.size() > 3) names += log::str(" and ", found.size() - 3, " more");
    throw common::InputError(log::str(
        "logging.folder ", folder_, " already holds checkpoints tagged ", config_.logging.write_tag, " (", names,
        "): resume that run with meta.load_checkpoint=true, give this one another logging.folder, or set "
        "checkpoint.overwrite=true to remove them and start afresh"));
  }
}

// checkpoint.overwrite on a fresh start: rank 0, the one that writes checkpoints, removes the earlier run's.
void Trainer::Impl::remove_earlier_checkpoints() const {
  if (rank_ != 0) return;
  const auto found = store_->existing();
  if (found.empty()) return;
  for (const auto& path : found) {
    std::error_code error;
    if (!fs::remove(path, error) && error) {
      throw common::InputError("checkpoint.overwrite: cannot remove " + path.string() + ": " + error.message());
    }
  }
  log::warn(log::str("checkpoint.overwrite: removed ", found.size(), " checkpoint(s) of an earlier run tagged ",
                     config_.logging.write_tag, " from ", folder_, "; starting afresh"));
}

void Trainer::Impl::build_data() {
  const auto& d = config_.data;
  try {
    dataset_ = data::open_dataset(d.dataset, common::dataset_path(d), d.split);
  } catch (const common::InputError& e) {
    throw common::InputError("data.dataset " + d.dataset + " at data.root_path/image_folder: " + e.what());
  }
  masks_ = std::make_unique<masking::MultiBlockMaskSampler>(
      mask_spec(config_), at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(config_.meta.seed)));

  data::LoaderOptions o;
  o.batch_size = d.batch_size;
  o.world_size = world_;
  o.rank = rank_;
  o.seed = static_cast<uint64_t>(config_.meta.seed);
  o.train = true;
  o.num_workers = d.num_workers;
  o.prefetch_batches = d.prefetch_batches;
  o.transform.crop_size = static_cast<int>(d.crop_size);
  o.transform.crop_scale = {d.crop_scale[0], d.crop_scale[1]};
  // W ranks with batch B train exactly as one process with batch W*B on the same data (up to the order of
  // floating-point sums; the dataset size a multiple of W, so nothing is padded): the sampler gives rank r
  // positions r, r + W, ... of the epoch's permutation, so its batch b holds rows r, r + W, ... of the single
  // process's batch b; each sample's crop is seeded by (seed, epoch, global position), not by rank; masks are
  // drawn for the whole W*B batch by a generator every rank seeds alike, and strided the same way (rank_slice);
  // the mean loss of B samples averaged over ranks is the mean over W*B, and so are the gradients.
  o.on_batch = [this](data::Batch& batch) {
    MaskAttachment a;
    a.masks = rank_slice(masks_->sample(batch.size * world_), rank_, world_);
    a.counter = masks_->counter();
    a.generator_state = masks_->position_generator().get_state();
    batch.attachment = std::move(a);
  };
  loader_ = std::make_unique<data::Loader>(dataset_, o);
  if (loader_->batches_per_epoch() == 0) {
    throw common::InputError("data.batch_size: " + std::to_string(d.batch_size) + " per rank x " +
                             std::to_string(world_) + " ranks is larger than the dataset (" +
                             std::to_string(dataset_->size()) + " images)");
  }
  const auto& opt = config_.optimization;
  // The schedules count steps in an int64 and in doubles: past 2^53 steps they would go wrong silently.
  const double scheduled_steps =
      static_cast<double>(opt.epochs) * opt.ipe_scale * static_cast<double>(loader_->batches_per_epoch());
  if (scheduled_steps > 9007199254740992.0) {
    throw common::InputError(log::str("optimization.epochs: ", opt.epochs, " epochs of ", loader_->batches_per_epoch(),
                                      " steps (x ipe_scale ", opt.ipe_scale,
                                      ") are more steps than the schedules can count (2^53)"));
  }

  ScheduleConfig s;
  s.iterations_per_epoch = loader_->batches_per_epoch();
  s.epochs = opt.epochs;
  s.ipe_scale = opt.ipe_scale;
  s.warmup_epochs = opt.warmup;
  s.start_lr = opt.start_lr;
  s.lr = opt.lr;
  s.final_lr = opt.final_lr;
  s.weight_decay = opt.weight_decay;
  s.final_weight_decay = opt.final_weight_decay;
  s.ema_start = opt.ema[0];
  s.ema_end = opt.ema[1];
  schedules_ = std::make_unique<Schedules>(s);
}

void Trainer::Impl::build_models() {
  const auto& m = config_.meta;
  const auto encoder =
      model::vit_preset(m.model_name, config_.data.crop_size, config_.mask.patch_size, dataset_->channels());
  torch::manual_seed(static_cast<uint64_t>(m.seed));
  models_ = build_jepa_models(encoder, model::predictor_for(encoder, m.pred_emb_dim, m.pred_depth), device_);
  optimizer_ = std::make_unique<AdamW>(reference_param_groups(*models_.encoder, *models_.predictor));
  if (world_ > 1) {
    sync_ = std::make_unique<dist::GradientSynchronizer>(comm_, trainable_parameters(models_), config_.dist);
    if (rank_ == 0) log::info(dist::describe_bucket_plan(sync_->buckets()));
  }
  step_ = std::make_unique<JepaStep>(models_, *optimizer_, m.use_bfloat16 == common::Bf16Mode::kOn);
  store_ = std::make_unique<CheckpointStore>(folder_, config_.logging.write_tag, config_.checkpoint.keep_last,
                                             config_.checkpoint.periodic_epochs);
}

// Loads the checkpoint asked for (meta.load_checkpoint), or checks that a fresh start replaces nothing unasked.
void Trainer::Impl::resume() {
  if (!config_.meta.load_checkpoint) {
    refuse_to_replace_earlier_checkpoints();
    // Nothing to save until the first step: a stop before it leaves no step-0 checkpoint that would block a rerun.
    last_saved_step_ = 0;
    return;
  }
  // Every rank loads it (share_rank0_state then makes sure they all hold rank 0's bits).
  const std::string path = store_->resolve(config_.meta.read_checkpoint);
  if (!fs::exists(path)) {
    throw common::InputError("meta.load_checkpoint: no checkpoint to resume from at " + path +
                             " (set meta.load_checkpoint=false to start afresh)");
  }
  const auto loaded = load_checkpoint(path, models_, optimizer_.get(), loader_->batches_per_epoch());
  position_ = loaded.position;
  position_.batch_in_epoch = batch_to_resume_at(path, loaded);
  if (rank_ == 0) warn_about_changed_settings(path, loaded.info.config_yaml);
  masks_->set_counter(position_.mask_counter);
  if (position_.mask_generator_state.defined()) masks_->position_generator().set_state(position_.mask_generator_state);
  last_saved_step_ = position_.step;
  log::info(log::str("resumed from ", path, " at step ", position_.step, " (epoch ", position_.epoch + 1, ", batch ",
                     position_.batch_in_epoch, ")"));
}

// The epoch's permutation depends on the seed and the epoch only, and a global batch takes the next world x batch
// samples of it (sampler.h), whatever the world size: a run with another world size or batch size continues the
// epoch exactly at the sample where the checkpoint's run stopped, when one of its batches starts there. Elsewhere
// it would repeat or skip samples, so that is refused.
int64_t Trainer::Impl::batch_to_resume_at(const std::string& path, const LoadedCheckpoint& loaded) const {
  const int64_t batch = loaded.position.batch_in_epoch;
  const int64_t saved_global = loaded.info.world_size * loaded.info.batch_size;
  const int64_t global = world_ * config_.data.batch_size;
  const std::string saved_shape = log::str(loaded.info.world_size, " ranks x batch ", loaded.info.batch_size);
  const std::string shape = log::str(world_, " ranks x data.batch_size ", config_.data.batch_size);
  const int64_t consumed = batch * saved_global;
  if (batch > 0 && saved_global != global && (saved_global <= 0 || consumed % global != 0)) {
    throw common::InputError(log::str(
        "checkpoint ", path, ": written after ", consumed, " samples of epoch ", loaded.position.epoch + 1, " (", batch,
        batch == 1 ? " step" : " steps", " of ", saved_shape, "); with ", shape,
        " no batch starts there, so the epoch would repeat or skip samples: resume with a world size x batch size "
        "that divides ",
        consumed, " (such as ", saved_shape, "), or from a checkpoint written at an epoch's end"));
  }
  const int64_t resumed = saved_global == global ? batch : consumed / global;
  if (resumed > loader_->batches_per_epoch()) {
    throw common::InputError(log::str("checkpoint ", path, ": saved after batch ", batch, " of an epoch of ",
                                      saved_shape, ", but with ", shape, " an epoch has only ",
                                      loader_->batches_per_epoch(),
                                      " batches; resume with the checkpoint's batch size and ranks"));
  }
  if (rank_ == 0 && saved_global != global) {
    log::warn(log::str("checkpoint ", path, " was written with ", saved_shape, " (", saved_global,
                       " samples a step); resuming with ", shape, " (", global, "): epoch ", loaded.position.epoch + 1,
                       " continues at its sample ", consumed,
                       ", but the steps differ from an uninterrupted run's, and the schedules now span ",
                       loader_->batches_per_epoch(), " steps an epoch"));
  }
  return resumed;
}

void Trainer::Impl::warn_about_changed_settings(const std::string& path, const std::string& saved_config) const {
  if (saved_config.empty()) return;  // a reference checkpoint saves no config
  std::string changed;
  try {
    for (const auto& line : common::changed_keys(common::read_saved_config(saved_config), config_)) {
      if (shapes_training(line)) changed += (changed.empty() ? "" : "; ") + line;
    }
  } catch (const common::ConfigError&) {
    log::warn("checkpoint " + path + ": its saved config cannot be read, so this run's settings are not compared");
    return;
  }
  if (changed.empty()) return;
  log::warn("checkpoint " + path + " was written with other settings, so the run does not continue as it would " +
            "have: " + changed);
}

// Every rank starts from rank 0's weights and optimizer state, fresh or resumed.
void Trainer::Impl::share_rank0_state() {
  if (world_ == 1) return;
  auto tensors = all_tensors(models_);
  for (auto& t : optimizer_->exp_avg()) tensors.push_back(t);
  for (auto& t : optimizer_->exp_avg_sq()) tensors.push_back(t);
  tensors.push_back(optimizer_->step_count());
  dist::broadcast_tensors(comm_, tensors, 0);
}

int64_t Trainer::Impl::total_steps() const {
  const int64_t scheduled = config_.optimization.epochs * loader_->batches_per_epoch();
  return config_.optimization.max_steps > 0 ? std::min(scheduled, config_.optimization.max_steps) : scheduled;
}

void Trainer::Impl::train_on(data::Batch& batch) {
  const auto iteration_start = Clock::now();
  const auto& attachment = std::any_cast<const MaskAttachment&>(batch.attachment);
  auto images =
      torch::from_blob(batch.images.data(), {batch.size, batch.channels, batch.height, batch.width}, torch::kFloat32)
          .to(device_);
  const masking::BatchMasks masks = attachment.masks.to(device_);

  const int64_t s = position_.step + 1;
  const double lr = schedules_->lr(s), wd = schedules_->weight_decay(s), momentum = schedules_->momentum(s);
  const auto step_start = Clock::now();
  JepaStep::Backward backward;
  if (sync_) {
    sync_->zero_grad();
    backward = [this](const torch::Tensor& loss) { sync_->backward(loss); };
  }
  auto loss = step_->forward_backward(images, masks, backward);
  if (sync_) sync_->finish();
  // The time finish() waited: the communication that backward did not hide.
  const double comm_wait_s = sync_ ? sync_->stats().last_exposed_seconds : 0.0;
  step_->update(lr, wd, momentum);
  keep_ranks_in_step(s);
  const double step_ms = 1e3 * seconds_since(step_start);

  position_.step = s;
  position_.batch_in_epoch = batch.index + 1;
  position_.mask_counter = attachment.counter;
  position_.mask_generator_state = attachment.generator_state;
  ++steps_this_run_;

  const double wait_ms = 1e3 * loader_->last_wait_seconds();
  const double iteration_s = seconds_since(iteration_start) + wait_ms / 1e3;
  train_seconds_ += iteration_s;
  CsvRow row;
  row.epoch = batch.epoch + 1;
  row.itr = batch.index;
  row.mask_a = masks.enc[0].size(1);
  row.mask_b = masks.pred[0].size(1);
  row.time_ms = step_ms;
  row.step = s;
  row.lr = lr;
  row.wd = wd;
  row.momentum = momentum;
  row.images_per_second = static_cast<double>(batch.size * world_) / iteration_s;
  row.step_ms = 1e3 * iteration_s;
  row.data_wait_ms = wait_ms;
  pending_losses_.push_back(loss);
  pending_rows_.push_back(row);
  pending_comm_wait_s_.push_back(comm_wait_s);
  if (log_due()) flush_logs();
}

// Ranks apply identical updates, so their weights only drift by non-determinism; the target is re-sent from
// rank 0 now and then, and the encoders are compared to catch a rank that went its own way.
void Trainer::Impl::keep_ranks_in_step(int64_t step) {
  if (world_ == 1) return;
  const auto& d = config_.dist;
  if (d.target_sync_every > 0 && step % d.target_sync_every == 0) {
    dist::broadcast_tensors(comm_, models_.target->parameters(), 0);
  }
  if (d.check_every > 0 && step % d.check_every == 0) {
    dist::verify_tensors_match(comm_, "encoder weights", models_.encoder->parameters());
  }
}

// The console line for the rows being flushed: the last step, with speed and ETA over all of them.
ProgressLine Trainer::Impl::progress_line() const {
  const CsvRow& last = pending_rows_.back();
  double interval_s = 0, interval_images = 0;
  for (const auto& r : pending_rows_)
    interval_s += r.step_ms / 1e3, interval_images += r.images_per_second * r.step_ms / 1e3;
  const auto rows = static_cast<double>(pending_rows_.size());
  ProgressLine p;
  p.epoch = last.epoch;
  p.epochs = config_.optimization.epochs;
  p.step = last.step;
  p.total_steps = total_steps();
  p.loss = last.loss;
  p.epoch_mean_loss = epoch_loss_sum_ / static_cast<double>(std::max<int64_t>(1, epoch_loss_count_));
  p.mask_a = last.mask_a;
  p.mask_b = last.mask_b;
  p.lr = last.lr;
  p.wd = last.wd;
  p.momentum = last.momentum;
  p.images_per_second = interval_images / interval_s;
  p.step_ms = 1e3 * interval_s / rows;
  p.data_wait_ms = last.data_wait_ms;
  p.eta_seconds = static_cast<double>(p.total_steps - p.step) * interval_s / rows;
  p.peak_rss_bytes = peak_rss_bytes();
  return p;
}

void Trainer::Impl::flush_logs() {
  if (pending_rows_.empty()) return;
  auto losses = torch::stack(pending_losses_).to(torch::kFloat32);
  if (world_ > 1) comm_.all_reduce(losses, dist::ReduceOp::kAverage)->wait();  // the logged loss is the global mean
  losses = losses.to(torch::kCPU);
  // NCCL's wait() does not block the host: an all-reduce the watchdog aborted leaves garbage, and its error.
  if (world_ > 1) comm_.synchronize();
  const auto* values = losses.data_ptr<float>();
  for (size_t i = 0; i < pending_rows_.size(); ++i) {
    auto& row = pending_rows_[i];
    row.loss = values[i];
    csv_->write(row);
    reporter_->step(row, config_.data.batch_size, pending_comm_wait_s_[i]);
    if (!std::isfinite(row.loss)) {
      csv_->flush();
      reporter_->non_finite_loss(row.loss, row.step);
      throw NonFiniteLoss(log::str("loss is ", row.loss, " at step ", row.step, " (epoch ", row.epoch, ", itr ",
                                   row.itr, "); stopping without checkpointing this state"));
    }
    epoch_loss_sum_ += row.loss;
    ++epoch_loss_count_;
  }
  csv_->flush();
  position_.last_loss = pending_rows_.back().loss;

  if (rank_ == 0) log::info(format_progress(progress_line()));
  pending_losses_.clear();
  pending_rows_.clear();
  pending_comm_wait_s_.clear();
}

std::optional<ExitReason> Trainer::Impl::stop_reason() {
  if (config_.optimization.max_steps > 0 && position_.step >= config_.optimization.max_steps)
    return ExitReason::kMaxSteps;
  // A signal, or the coordinator's stop request (rank 0 sees it first). With several ranks a stop must happen at
  // the same step everywhere, so ranks agree at log boundaries.
  if (stopped_during_eval_) return stopped_during_eval_;
  double flag = reporter_->stop_asked() ? 1 : 0;
  if (world_ > 1) {
    if (!log_due()) return std::nullopt;
    auto all = torch::tensor({flag}, torch::kFloat64).to(comm_.device());
    comm_.all_reduce(all, dist::ReduceOp::kSum)->wait();
    flag = all.item<double>();
    comm_.synchronize();  // as in flush_logs
  }
  if (flag == 0) return std::nullopt;
  return asked_stop_reason();
}

// Why the ranks stop once they agreed that one was asked to (a rank that was not told the reason says signal).
ExitReason Trainer::Impl::asked_stop_reason() const {
  if (common::stop_signal() != 0) return ExitReason::kSignal;
  return reporter_->stop_requested() || world_ == 1 ? ExitReason::kStopRequested : ExitReason::kSignal;
}

// Runs an evaluation; a stop asked for during it ends the evaluation and then the run (the checkpoint of the
// step is written before any evaluation).
void Trainer::Impl::evaluate_unless_stopped(const std::function<void()>& evaluate) {
  try {
    evaluate();
  } catch (const EvaluationStopped& e) {
    if (rank_ == 0) log::warn(e.what());
    stopped_during_eval_ = asked_stop_reason();
  }
}

void Trainer::Impl::save_checkpoint(bool epoch_end) {
  flush_logs();  // the loss check comes before anything is saved
  if (position_.step == last_saved_step_) return;
  comm_.synchronize();  // a failed gradient all-reduce (NCCL reports it late) must not reach a checkpoint
  // The optimizer skips updates from non-finite gradients, but a finite one can still overflow a weight after
  // the step's (finite) loss was taken. Every rank checks: their weights agree, so they stop together.
  if (!all_finite(all_tensors(models_))) {
    throw NonFiniteLoss(
        log::str("weights are not finite after step ", position_.step, "; stopping without checkpointing this state"));
  }
  if (rank_ != 0) return;
  // The other ranks wait meanwhile in their next collective, past dist.timeout_s if need be.
  const dist::LocalWork work(comm_.progress(), "writing a checkpoint in " + folder_);
  const int64_t s = std::max<int64_t>(1, position_.step);
  CheckpointInfo info{config_.data.batch_size, world_, schedules_->lr(s), schedules_->weight_decay(s),
                      common::to_yaml(config_)};
  last_checkpoint_ = store_->save(models_, *optimizer_, position_, info, position_.epoch, epoch_end);
  last_saved_step_ = position_.step;
  reporter_->checkpoint_written(last_checkpoint_, position_.step);
  log::info(log::str("checkpoint written: ", last_checkpoint_));
}

TrainResult Trainer::Impl::run() {
  try {
    while (position_.epoch < config_.optimization.epochs) {
      if (auto reason = stop_reason()) return finish(*reason);
      if (!epoch_started_) {
        loader_->start(position_.epoch, position_.batch_in_epoch);
        epoch_started_ = true;
      }
      auto batch = loader_->next();
      if (batch) {
        train_on(*batch);
        // An epoch ends with its last batch, before a checkpoint of that step or max_steps could pre-empt it.
        if (batch->index + 1 < loader_->batches_per_epoch()) {
          if (config_.checkpoint.every_steps > 0 && position_.step % config_.checkpoint.every_steps == 0)
            save_checkpoint(/*epoch_end=*/false);
          continue;
        }
      }
      end_epoch();  // also without a batch: a run resumed from a checkpoint written after an epoch's last batch
    }
    return finish(stopped_during_eval_.value_or(ExitReason::kCompleted));
  } catch (const NonFiniteLoss& e) {
    log::error(e.what());
    return finish(ExitReason::kNonFiniteLoss);
  } catch (const std::exception& e) {
    // The job is about to end (a peer lost, a timeout, memory): the coordinator hears it now, not as a worker
    // gone silent a heartbeat timeout later.
    reporter_->failed(e.what(), position_.step, dynamic_cast<const dist::CollectiveTimeout*>(&e) != nullptr);
    throw;
  }
}

// The epoch's checkpoint (the reference saves one per epoch; periodic copies) and evaluation.
void Trainer::Impl::end_epoch() {
  ++position_.epoch;
  position_.batch_in_epoch = 0;
  epoch_started_ = false;
  save_checkpoint(/*epoch_end=*/true);
  if (evaluator_ && evaluator_->due_after_epoch(position_.epoch))
    evaluate_unless_stopped([&] { evaluator_->evaluate_target(models_.target, eval_position()); });
  epoch_loss_sum_ = 0;
  epoch_loss_count_ = 0;
}

TrainResult Trainer::Impl::finish(ExitReason reason) {
  loader_->stop();
  if (reason != ExitReason::kNonFiniteLoss) {
    try {
      save_checkpoint(/*epoch_end=*/false);  // flushes the last rows first: their losses are checked there
    } catch (const NonFiniteLoss& e) {
      log::error(e.what());
      reason = ExitReason::kNonFiniteLoss;
    }
  }
  if (config_.eval.at_end && (reason == ExitReason::kCompleted || reason == ExitReason::kMaxSteps)) {
    evaluate_unless_stopped([&] { evaluator_->evaluate_at_end(models_.target, eval_position()); });
    if (stopped_during_eval_) reason = *stopped_during_eval_;
  }
  reporter_->finish(to_string(reason), reason == ExitReason::kNonFiniteLoss);
  if (rank_ == 0) write_run_summary(reason);

  TrainResult result;
  result.reason = reason;
  result.steps = position_.step;
  result.last_loss = position_.last_loss;
  result.last_checkpoint = last_checkpoint_;
  result.exit_code = exit_code_for(reason);
  return result;
}

void Trainer::Impl::write_run_summary(ExitReason reason) const {
  RunSummary s;
  s.steps = position_.step;
  s.epochs = static_cast<double>(position_.step) / static_cast<double>(loader_->batches_per_epoch());
  s.last_loss = position_.last_loss;
  s.images_per_second =
      train_seconds_ > 0 ? static_cast<double>(steps_this_run_ * config_.data.batch_size * world_) / train_seconds_ : 0;
  s.world_size = world_;
  s.encoder_sha256 = model::parameters_sha256(*models_.encoder);
  s.target_encoder_sha256 = model::parameters_sha256(*models_.target);
  s.exit_reason = to_string(reason);
  s.wall_seconds = seconds_since(started_);
  s.data_wait_seconds = loader_->data_wait_seconds();
  s.communication_wait_seconds = sync_ ? sync_->stats().exposed_seconds : 0.0;
  s.skipped_samples = loader_->skipped_samples();
  s.peak_rss_bytes = peak_rss_bytes();
  s.device = device_.str();
  s.dtype = config_.meta.use_bfloat16 == common::Bf16Mode::kOn ? "bf16" : "fp32";
  s.last_checkpoint = last_checkpoint_;
  s.run_folder = fs::absolute(folder_).string();
  if (evaluator_) {
    s.eval = evaluator_->last();
    s.eval_pooling = config_.eval.pooling;
  }
  write_summary((fs::path(folder_) / "summary.json").string(), s);
  log::info(log::str("run ", to_string(reason), " after ", s.steps, " steps (", s.images_per_second,
                     " img/s); results in ", s.run_folder, " (summary.json, ", config_.logging.write_tag,
                     "_r0.csv, checkpoints)"));
}

// The epoch of the last step is 1-based as in the CSV: the one just finished at an epoch's end.
EvalPosition Trainer::Impl::eval_position() const {
  return {position_.batch_in_epoch > 0 ? position_.epoch + 1 : position_.epoch, position_.step, train_seconds_};
}

Trainer::Trainer(const common::Config& config, dist::Communicator& comm)
    : impl_(std::make_unique<Impl>(config, comm)) {}
Trainer::~Trainer() = default;
TrainResult Trainer::run() { return impl_->run(); }

}  // namespace ijepa::train
