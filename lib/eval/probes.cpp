#include "eval/probes.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cmath>

#include "common/errors.h"

namespace ijepa::eval {

namespace {

constexpr int64_t kScoreChunk = 4096;  // rows per forward pass when scoring

void check_pair(const FeatureSet& train, const FeatureSet& test) {
  if (!train.features.defined() || !test.features.defined() || train.features.size(0) == 0 ||
      test.features.size(0) == 0) {
    throw common::InputError("probe: the train and test feature sets must not be empty");
  }
  if (train.features.size(1) != test.features.size(1)) {
    throw common::InputError("probe: train features have width " + std::to_string(train.features.size(1)) +
                             ", test features " + std::to_string(test.features.size(1)));
  }
}

int64_t class_count(const FeatureSet& train, const FeatureSet& test) {
  const int64_t seen = std::max(train.labels.max().item<int64_t>(), test.labels.max().item<int64_t>()) + 1;
  return std::max(train.num_classes, seen);
}

// Head: the features standardised by the training set's per-dimension mean and std (a fixed affine map, so the
// head stays a linear classifier of the features; without it, features of small spread, such as a random
// encoder's, leave the optimiser far from convergence), optional BatchNorm without affine parameters, then a
// linear layer. Its parameters are drawn from the probe's own generator only (a torch::nn::Linear would draw
// its default init from the global one, shifting the random stream of a trainer that evaluates between steps).
struct LinearHeadImpl : torch::nn::Module {
  LinearHeadImpl(const torch::Tensor& train_features, int64_t classes, bool batchnorm, at::Generator& generator) {
    const int64_t features = train_features.size(1);
    const auto spread = train_features.std(0);  // [F]
    shift = register_buffer("shift", train_features.mean(0));
    scale = register_buffer("scale", 1.0 / (spread + kStdFloor * spread.max().clamp_min(1e-12)));
    if (batchnorm) {
      norm = register_module("norm",
                             torch::nn::BatchNorm1d(torch::nn::BatchNormOptions(features).affine(false).eps(1e-6)));
    }
    // MAE's head init: small weights, zero bias.
    weight = register_parameter("weight", torch::empty({classes, features}).normal_(0.0, 0.01, generator));
    bias = register_parameter("bias", torch::zeros({classes}));
  }
  torch::Tensor forward(torch::Tensor x) {  // [B, F] -> [B, classes]
    x = (x - shift) * scale;
    if (norm) x = norm(x);
    return torch::linear(x, weight, bias);
  }
  // Dimensions that barely vary are not blown up: this fraction of the largest std is added to every std.
  static constexpr double kStdFloor = 1e-3;
  torch::nn::BatchNorm1d norm{nullptr};
  torch::Tensor shift, scale, weight, bias;
};
TORCH_MODULE(LinearHead);

double accuracy(LinearHead& head, const torch::Tensor& features, const torch::Tensor& labels, torch::Device device) {
  torch::NoGradGuard no_grad;
  head->eval();
  int64_t correct = 0;
  for (int64_t start = 0; start < features.size(0); start += kScoreChunk) {
    const int64_t n = std::min(kScoreChunk, features.size(0) - start);
    auto logits = head->forward(features.narrow(0, start, n).to(device));
    correct += logits.argmax(1).eq(labels.narrow(0, start, n).to(device)).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(features.size(0));
}

// One intra-op thread while the head trains on the CPU on narrow features: its ops ([batch, F] x [F, classes]) are
// too small to gain from more, and on a shared machine OpenMP's barriers wait on descheduled threads (10000 x 784
// features, 30 epochs: 0.7 s on 2 quiet cores, 1.1 s on one, 40-50 s on 2 busy ones). Wide features (a token
// grid) keep the runtime's threads: 30000 x 9408 features, 10 epochs, took 20-24 s on one thread, 13-15 s on two.
constexpr int64_t kWideFeatures = 4096;
class OneIntraOpThread {
 public:
  explicit OneIntraOpThread(bool enabled) : previous_(enabled ? at::get_num_threads() : 0) {
    if (enabled) at::set_num_threads(1);
  }
  ~OneIntraOpThread() {
    if (previous_ > 0) at::set_num_threads(previous_);
  }
  OneIntraOpThread(const OneIntraOpThread&) = delete;
  OneIntraOpThread& operator=(const OneIntraOpThread&) = delete;

 private:
  int previous_;
};

}  // namespace

LinearProbeResult linear_probe(const FeatureSet& train, const FeatureSet& test, const LinearProbeOptions& options,
                               torch::Device device, const ProgressFn& progress) {
  check_pair(train, test);
  if (options.epochs <= 0 || options.batch_size <= 0) {
    throw common::InputError("linear probe: epochs and batch size must be positive");
  }
  // The features are standardised by the training set's (unbiased) std, which one sample leaves undefined.
  if (train.features.size(0) < 2) {
    throw common::InputError("linear probe: needs at least 2 training samples, got " +
                             std::to_string(train.features.size(0)));
  }
  const OneIntraOpThread one_thread(device.is_cpu() && train.features.size(1) < kWideFeatures);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  LinearHead head(train.features, class_count(train, test), options.batchnorm, generator);
  head->to(device);
  torch::optim::AdamW optimizer(head->parameters(),
                                torch::optim::AdamWOptions(options.lr).weight_decay(options.weight_decay));

  const auto x = train.features.to(device);
  const auto y = train.labels.to(device);
  const int64_t n = x.size(0);
  const int64_t steps_per_epoch = (n + options.batch_size - 1) / options.batch_size;
  const double total_steps = static_cast<double>(options.epochs * steps_per_epoch);
  int64_t step = 0;
  LinearProbeResult result;
  if (progress) progress("linear probe", 0, options.epochs);
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    head->train();
    const auto order = torch::randperm(n, generator, torch::kInt64).to(device);
    auto loss_sum = torch::zeros({}, x.options());
    for (int64_t start = 0; start < n; start += options.batch_size, ++step) {
      const double lr = options.lr * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(step) / total_steps));
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      const int64_t size = std::min(options.batch_size, n - start);
      if (size < 2 && options.batchnorm) continue;  // BatchNorm cannot normalise a batch of one
      const auto idx = order.narrow(0, start, size);
      auto loss = torch::cross_entropy_loss(head->forward(x.index_select(0, idx)), y.index_select(0, idx));
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      loss_sum += loss.detach();
    }
    result.final_loss = loss_sum.item<double>() / static_cast<double>(steps_per_epoch);
    if (progress) progress("linear probe", epoch + 1, options.epochs);
  }
  result.train_top1 = accuracy(head, train.features, train.labels, device);
  result.test_top1 = accuracy(head, test.features, test.labels, device);
  return result;
}

double knn_top1(const FeatureSet& train, const FeatureSet& test, const KnnOptions& options, torch::Device device,
                const ProgressFn& progress) {
  check_pair(train, test);
  if (options.k <= 0 || options.temperature <= 0 || options.chunk <= 0) {
    throw common::InputError("knn: k, temperature and chunk must be positive");
  }
  torch::NoGradGuard no_grad;
  const int64_t classes = class_count(train, test);
  const auto bank =
      torch::nn::functional::normalize(train.features.to(device), torch::nn::functional::NormalizeFuncOptions().dim(1));
  const auto bank_labels = train.labels.to(device);
  const int64_t k = std::min(options.k, bank.size(0));
  const int64_t n = test.features.size(0);
  int64_t correct = 0;
  if (progress) progress("knn", 0, n);
  for (int64_t start = 0; start < n; start += options.chunk) {
    const int64_t rows = std::min(options.chunk, n - start);
    const auto queries = torch::nn::functional::normalize(test.features.narrow(0, start, rows).to(device),
                                                          torch::nn::functional::NormalizeFuncOptions().dim(1));
    const auto [similarity, nearest] = queries.matmul(bank.t()).topk(k, 1);  // [rows, k]
    const auto neighbour_labels = bank_labels.index_select(0, nearest.flatten()).view({rows, k});
    const auto votes = torch::zeros({rows, classes}, queries.options())
                           .scatter_add_(1, neighbour_labels, similarity.div(options.temperature).exp());
    correct += votes.argmax(1).eq(test.labels.narrow(0, start, rows).to(device)).sum().item<int64_t>();
    if (progress) progress("knn", start + rows, n);
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

}  // namespace ijepa::eval
