#include "train/run_evaluator.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <tuple>

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "dist/communicator.h"
#include "eval/encoder_io.h"
#include "eval/features.h"
#include "model/vit_config.h"
#include "train/report.h"
#include "train/run_reporter.h"

namespace ijepa::train {

namespace {

using common::Clock;
using common::seconds_since;

std::string percent(double fraction) {
  char text[16];
  std::snprintf(text, sizeof text, "%.2f%%", 100 * fraction);
  return text;
}

std::shared_ptr<const data::Dataset> eval_subset(std::shared_ptr<const data::Dataset> dataset, int64_t max_samples,
                                                 const std::string& key, int64_t world) {
  auto subset = eval::spread_subset(std::move(dataset), max_samples);
  if (subset->size() < world) {
    throw common::InputError(key + ": " + std::to_string(subset->size()) +
                             " samples to evaluate on are fewer than the " + std::to_string(world) +
                             " ranks that share them");
  }
  return subset;
}

std::shared_ptr<const data::Dataset> open_test_split(const common::DataConfig& d) {
  try {
    return data::open_dataset(d.dataset, common::dataset_path(d), "test");
  } catch (const common::InputError& e) {
    throw common::InputError(std::string("eval: the probes are scored on the dataset's test split: ") + e.what());
  }
}

}  // namespace

RunEvaluator::RunEvaluator(const common::Config& config, dist::Communicator& comm, RunReporter& reporter,
                           std::shared_ptr<const data::Dataset> train)
    : config_(config), comm_(comm), reporter_(reporter) {
  const int64_t world = comm.world_size();
  auto test = open_test_split(config.data);
  data::check_same_classes(*train, *test);  // image folders: at start, not after the first epoch
  train_ = eval_subset(std::move(train), config.eval.max_train_samples, "eval.max_train_samples", world);
  test_ = eval_subset(std::move(test), config.eval.max_test_samples, "eval.max_test_samples", world);
  options_.protocol = eval::parse_protocol(config.eval.protocol);
  options_.device = comm.device();
  // The training batch fits the device; on the CPU, batches much larger run slower (cache, page faults).
  feature_options_.batch_size = config.data.batch_size;
  feature_options_.num_workers = std::max<int64_t>(1, config.data.num_workers);
  feature_options_.bf16 = config.meta.use_bfloat16 == common::Bf16Mode::kOn;  // resolved by the trainer
  feature_options_.pooling = eval::parse_pooling(config.eval.pooling);
  // One rank has no one to agree with: it stops in the middle of a stage, at the next batch or probe epoch.
  if (world == 1) {
    options_.progress = [this](const std::string& stage, int64_t, int64_t) { stop_if_asked(stage); };
    feature_options_.progress = options_.progress;
  }
}

void RunEvaluator::stop_if_asked(const std::string& stage) {
  double asked = reporter_.stop_asked() ? 1 : 0;
  if (comm_.world_size() > 1) {
    auto flag = torch::tensor({asked}, torch::kFloat64).to(comm_.device());
    comm_.all_reduce(flag, dist::ReduceOp::kSum)->wait();
    asked = flag.item<double>();
  }
  if (asked > 0) throw EvaluationStopped("evaluation abandoned during " + stage + ": a stop was asked for");
}

void RunEvaluator::open_log(int64_t resumed_step) {
  if (comm_.rank() != 0) return;
  const auto path = std::filesystem::path(config_.logging.folder) / (config_.logging.write_tag + "_eval.csv");
  csv_ = std::make_unique<EvalCsvLog>(path.string(), resumed_step);
}

RunEvaluator::~RunEvaluator() = default;

bool RunEvaluator::due_after_epoch(int64_t epochs_done) const {
  return config_.eval.every_epochs > 0 && epochs_done % config_.eval.every_epochs == 0;
}

eval::FeatureSet RunEvaluator::gather_features(const std::shared_ptr<const data::Dataset>& dataset,
                                               const Extract& extract) {
  const int64_t world = comm_.world_size();
  auto own = extract(eval::strided_subset(dataset, comm_.rank(), world));
  if (world == 1) return own;
  stop_if_asked("feature extraction");
  // Rank r holds samples r, r + world, ...; the features of a whole split may pass 2 GiB, which
  // all_gather_rows sends in rounds.
  const auto features = comm_.all_gather_rows(own.features);
  const auto labels = comm_.all_gather_rows(own.labels);
  const int64_t n = dataset->size(), width = own.features.size(1);
  eval::FeatureSet all;
  all.num_classes = own.num_classes;
  for (const int64_t skipped : comm_.all_gather_int64(own.skipped)) all.skipped += skipped;
  all.features = torch::empty({n, width}, own.features.options());
  all.labels = torch::empty({n}, own.labels.options());
  for (int64_t r = 0; r < world; ++r) {
    const auto rows = torch::arange(r, n, world, torch::kInt64);
    if (features[r].size(0) != rows.size(0) || labels[r].size(0) != rows.size(0)) {
      throw std::runtime_error(log::str("evaluation: rank ", r, " sent ", features[r].size(0), " feature rows, not ",
                                        rows.size(0), " (the ranks' datasets differ)"));
    }
    all.features.index_copy_(0, rows, features[r]);
    all.labels.index_copy_(0, rows, labels[r]);
  }
  return all;
}

void RunEvaluator::probe(const std::string& features, const Extract& extract, const EvalPosition& at) {
  // Ranks may extract their shares and run the probes at different speeds; the faster wait in the next collective.
  const dist::LocalWork work(comm_.progress(), "evaluating the " + features + " features");
  const auto start = Clock::now();
  const auto train = gather_features(train_, extract);
  const auto test = gather_features(test_, extract);
  const double feature_seconds = seconds_since(start);
  const auto result = eval::evaluate_features(train, test, options_);
  if (comm_.world_size() > 1) stop_if_asked("the probes");

  // last_ keeps one evaluation: the features probed at this step, the latest of each.
  last_.erase(std::remove_if(last_.begin(), last_.end(),
                             [&](const EvalRow& r) { return r.step != at.step || r.features == features; }),
              last_.end());
  std::string summary;
  for (const auto& [protocol, top1, probe_seconds] : {std::tuple{"linear", result.linear_top1, result.linear_seconds},
                                                      std::tuple{"knn", result.knn_top1, result.knn_seconds}}) {
    if (!top1) continue;
    EvalRow row;
    row.epoch = at.epoch;
    row.step = at.step;
    row.features = features;
    row.protocol = protocol;
    row.top1 = *top1;
    row.train_samples = result.train_samples;
    row.test_samples = result.test_samples;
    row.seconds = feature_seconds + probe_seconds;
    row.train_seconds = at.train_seconds;
    last_.push_back(row);
    summary += log::str(summary.empty() ? "" : ", ", protocol, " top-1 ", percent(*top1));
    if (comm_.rank() != 0) continue;
    csv_->write(row);
    if (features == "target") reporter_.evaluation(protocol, *top1, at.step);
  }
  const int64_t skipped = result.train_skipped + result.test_skipped;
  const std::string replaced = skipped > 0 ? log::str(", ", skipped, " unreadable ones replaced by a neighbour") : "";
  log::info(log::str("eval at step ", at.step, " (epoch ", at.epoch, "), ", features, " (", result.feature_dim,
                     " features): ", summary, " (", result.train_samples, " train / ", result.test_samples,
                     " test images", replaced, ", ", static_cast<int64_t>(seconds_since(start) + 0.5), " s)"));
}

void RunEvaluator::evaluate_target(model::VisionTransformer& target, const EvalPosition& at) {
  reporter_.evaluating();
  probe(
      "target",
      [&](std::shared_ptr<const data::Dataset> d) {
        return eval::extract_features(target, std::move(d), feature_options_);
      },
      at);
}

void RunEvaluator::evaluate_at_end(model::VisionTransformer& target, const EvalPosition& at) {
  const bool done = std::any_of(last_.begin(), last_.end(),
                                [&](const EvalRow& r) { return r.step == at.step && r.features == "target"; });
  if (!done) evaluate_target(target, at);
  if (config_.eval.baselines) {
    const auto& meta = config_.meta;
    const auto& shape = target->config();
    auto initial = eval::random_encoder(shape, model::predictor_for(shape, meta.pred_emb_dim, meta.pred_depth),
                                        static_cast<uint64_t>(meta.seed));
    initial->to(comm_.device());
    probe(
        "random_init",
        [&](std::shared_ptr<const data::Dataset> d) {
          return eval::extract_features(initial, std::move(d), feature_options_);
        },
        at);
    probe(
        "raw_pixels",
        [&](std::shared_ptr<const data::Dataset> d) {
          return eval::pixel_features(std::move(d), config_.data.crop_size, feature_options_);
        },
        at);
  }
  log::info(format_eval_table(last_));
}

}  // namespace ijepa::train
