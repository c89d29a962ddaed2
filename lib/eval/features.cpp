#include "eval/features.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "common/errors.h"
#include "data/loader.h"
#include "model/autocast.h"

namespace ijepa::eval {

namespace {

// A view of some samples of another dataset.
class SubsetDataset : public data::Dataset {
 public:
  SubsetDataset(std::shared_ptr<const data::Dataset> base, std::vector<int64_t> indices)
      : base_(std::move(base)), indices_(std::move(indices)) {}
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  int channels() const override { return base_->channels(); }
  int64_t num_classes() const override { return base_->num_classes(); }
  int64_t label(int64_t i) const override { return base_->label(indices_.at(i)); }
  data::Image load(int64_t i) const override { return base_->load(indices_.at(i)); }
  std::string name(int64_t i) const override { return base_->name(indices_.at(i)); }

 private:
  std::shared_ptr<const data::Dataset> base_;
  std::vector<int64_t> indices_;
};

// images: [B, C, H, W] on the device -> [B, F]
using FeatureFn = std::function<torch::Tensor(const torch::Tensor& images)>;

FeatureSet run_pass(const std::shared_ptr<const data::Dataset>& dataset, int64_t crop_size, torch::Device device,
                    const FeatureOptions& options, const FeatureFn& features_of) {
  if (dataset->size() == 0) throw common::InputError("dataset has no samples");
  data::LoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.train = false;
  lo.num_workers = options.num_workers;
  lo.transform.crop_size = static_cast<int>(crop_size);
  data::Loader loader(dataset, lo);
  loader.start(0);

  const int64_t n = dataset->size();
  FeatureSet out;
  out.labels = torch::empty({n}, torch::kInt64);
  out.num_classes = dataset->num_classes();
  int64_t done = 0;
  if (options.progress) options.progress(options.stage, 0, n);
  while (auto batch = loader.next()) {
    auto images = torch::from_blob(batch->images.data(), {batch->size, batch->channels, batch->height, batch->width},
                                   torch::kFloat32)
                      .to(device);
    auto f = features_of(images).to(torch::kCPU, torch::kFloat32);  // [B, F]
    if (!out.features.defined()) out.features = torch::empty({n, f.size(1)}, torch::kFloat32);
    out.features.narrow(0, done, batch->size).copy_(f);
    out.labels.narrow(0, done, batch->size).copy_(torch::from_blob(batch->labels.data(), {batch->size}, torch::kInt64));
    done += batch->size;
    if (options.progress) options.progress(options.stage, done, n);
  }
  out.skipped = loader.skipped_samples();
  return out;
}

}  // namespace

Pooling parse_pooling(const std::string& name) {
  if (name == "avg") return Pooling::kAvg;
  if (name == "avg4") return Pooling::kAvgLast4;
  if (name == "grid") return Pooling::kGrid;
  throw common::InputError("pooling: '" + name + "' is not one of avg, avg4, grid");
}

std::string to_string(Pooling pooling) {
  switch (pooling) {
    case Pooling::kAvg:
      return "avg";
    case Pooling::kAvgLast4:
      return "avg4";
    case Pooling::kGrid:
      return "grid";
  }
  return "?";
}

int64_t grid_cells(int64_t width) {
  constexpr int64_t kMaxCells = 7, kFeatureBudget = 10000;
  const auto cells = static_cast<int64_t>(std::sqrt(static_cast<double>(kFeatureBudget) / static_cast<double>(width)));
  return std::clamp<int64_t>(cells, 1, kMaxCells);
}

std::shared_ptr<const data::Dataset> spread_subset(std::shared_ptr<const data::Dataset> dataset, int64_t max_samples) {
  const int64_t n = dataset->size();
  if (max_samples <= 0 || max_samples >= n) return dataset;
  std::vector<int64_t> indices(max_samples);
  for (int64_t i = 0; i < max_samples; ++i) indices[i] = i * n / max_samples;
  return std::make_shared<SubsetDataset>(std::move(dataset), std::move(indices));
}

std::shared_ptr<const data::Dataset> strided_subset(std::shared_ptr<const data::Dataset> dataset, int64_t rank,
                                                    int64_t world) {
  if (world == 1) return dataset;
  std::vector<int64_t> indices;
  for (int64_t i = rank; i < dataset->size(); i += world) indices.push_back(i);
  return std::make_shared<SubsetDataset>(std::move(dataset), std::move(indices));
}

torch::Tensor pooled_features(model::VisionTransformer& encoder, const torch::Tensor& images, Pooling pooling) {
  if (pooling == Pooling::kAvg) return encoder->forward(images).mean(1).to(torch::kFloat32);  // [B, D]
  if (pooling == Pooling::kGrid) {
    const auto tokens = encoder->forward(images).to(torch::kFloat32);  // [B, N, D], N = rows * cols
    const int64_t rows = images.size(2) / encoder->config().patch_size;
    const int64_t cols = images.size(3) / encoder->config().patch_size;
    const auto map = tokens.transpose(1, 2).reshape({tokens.size(0), tokens.size(2), rows, cols});
    const int64_t cells = grid_cells(tokens.size(2));
    return torch::adaptive_avg_pool2d(map, {std::min(rows, cells), std::min(cols, cells)}).flatten(1);
  }
  auto layers = encoder->last_block_outputs(images, 4);  // 4 x [B, N, D], the last one already normalised
  std::vector<torch::Tensor> means;
  for (size_t i = 0; i < layers.size(); ++i) {
    means.push_back((i + 1 < layers.size() ? encoder->norm(layers[i]) : layers[i]).mean(1).to(torch::kFloat32));
  }
  return torch::cat(means, 1);  // [B, 4D]
}

FeatureSet extract_features(model::VisionTransformer& encoder, std::shared_ptr<const data::Dataset> dataset,
                            const FeatureOptions& options) {
  const auto& config = encoder->config();
  if (dataset->channels() != config.in_chans) {
    throw common::InputError("model mismatch: the encoder takes " + std::to_string(config.in_chans) +
                             "-channel images, the dataset has " + std::to_string(dataset->channels()));
  }
  torch::NoGradGuard no_grad;
  // Restores the mode also when options.progress throws to abandon the pass.
  struct EvalModeGuard {
    explicit EvalModeGuard(torch::nn::Module& m) : module(m), was_training(m.is_training()) { module.eval(); }
    ~EvalModeGuard() { module.train(was_training); }
    EvalModeGuard(const EvalModeGuard&) = delete;
    EvalModeGuard& operator=(const EvalModeGuard&) = delete;
    torch::nn::Module& module;
    const bool was_training;
  } eval_mode(*encoder);
  const torch::Device device = encoder->pos_embed.device();
  auto pool = [&](const torch::Tensor& images) {
    const model::AutocastGuard autocast(device.type(), options.bf16);
    return pooled_features(encoder, images, options.pooling);
  };
  return run_pass(dataset, config.img_size, device, options, pool);
}

FeatureSet pixel_features(std::shared_ptr<const data::Dataset> dataset, int64_t crop_size,
                          const FeatureOptions& options) {
  return run_pass(dataset, crop_size, torch::kCPU, options,
                  [](const torch::Tensor& images) { return images.flatten(1); });
}

}  // namespace ijepa::eval
