// The evaluation entry point: frozen features of a train and a test split, then the linear probe and/or kNN,
// top-1 on the test split. ijepa-eval calls it for a checkpoint, a randomly initialised encoder or raw pixels;
// the trainer calls it on its own target encoder during pretraining.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>

#include "data/dataset.h"
#include "eval/features.h"
#include "eval/probes.h"
#include "eval/progress.h"
#include "model/vit.h"

namespace ijepa::eval {

enum class Protocol { kLinear, kKnn, kBoth };

// "linear" | "knn" | "both" (EvalConfig::protocol's values); InputError otherwise.
Protocol parse_protocol(const std::string& name);
std::string to_string(Protocol protocol);

struct EvalOptions {
  Protocol protocol = Protocol::kBoth;
  Pooling pooling = Pooling::kAvg;
  int64_t max_train_samples = 0;  // 0: the whole split; otherwise spread evenly over it
  int64_t max_test_samples = 0;
  int64_t batch_size = 64;             // feature extraction (see FeatureOptions)
  int64_t num_workers = 2;             // decoding threads
  bool bf16 = false;                   // autocast feature extraction to bfloat16
  torch::Device device = torch::kCPU;  // where the probes run (features come from the encoder's own device)
  LinearProbeOptions linear;
  KnnOptions knn;
  ProgressFn progress;  // optional; stages "features train", "features test", "linear probe", "knn"
};

struct EvalResult {
  std::optional<double> linear_top1;  // fraction in [0, 1] on the test split
  std::optional<double> linear_train_top1;
  std::optional<double> knn_top1;
  int64_t train_samples = 0;
  int64_t test_samples = 0;
  int64_t train_skipped = 0;  // unreadable samples, counted in *_samples but replaced by a readable neighbour
  int64_t test_skipped = 0;
  int64_t feature_dim = 0;
  int64_t num_classes = 0;
  double feature_seconds = 0;
  double linear_seconds = 0;
  double knn_seconds = 0;
};

// Evaluates a frozen encoder on the device it is on (its mode and place are left as they were). The datasets
// must have the encoder's channel count and the same classes (data::check_same_classes; InputError otherwise).
// Draws nothing from the global generator.
EvalResult evaluate(model::VisionTransformer& encoder, std::shared_ptr<const data::Dataset> train,
                    std::shared_ptr<const data::Dataset> test, const EvalOptions& options);

// The raw-pixel baseline: the same probes on normalised pixels at crop_size x crop_size.
EvalResult evaluate_pixels(std::shared_ptr<const data::Dataset> train, std::shared_ptr<const data::Dataset> test,
                           int64_t crop_size, const EvalOptions& options);

// The probes alone, on features already computed (feature_seconds is left 0).
EvalResult evaluate_features(const FeatureSet& train, const FeatureSet& test, const EvalOptions& options);

}  // namespace ijepa::eval
