// The two probes on cached features: a linear head on the standardised features (optionally after a BatchNorm
// without affine parameters, MAE's linear probe) trained by AdamW with a cosine schedule, and DINO's weighted
// k-nearest-neighbour vote.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "eval/features.h"
#include "eval/progress.h"

namespace ijepa::eval {

// The defaults train the head to convergence on frozen ViT features: 30 epochs at 1e-3 left it at 65% train
// accuracy on 10000 Fashion-MNIST features, where 100 epochs at 1e-2 reach 73% (test 64% -> 72%).
struct LinearProbeOptions {
  int64_t epochs = 100;
  int64_t batch_size = 256;
  double lr = 1e-2;  // peak; cosine decay to 0 over all steps, no warm-up
  double weight_decay = 1e-4;
  bool batchnorm = false;  // BatchNorm1d(F, affine=false, eps=1e-6) before the linear layer
  uint64_t seed = 0;       // head initialisation and shuffling (a private generator)
};

struct LinearProbeResult {
  double test_top1 = 0;   // fraction in [0, 1]
  double train_top1 = 0;  // on the training features, head in eval mode
  double final_loss = 0;  // mean cross-entropy of the last epoch
};

// Trains the head on `train` and scores it on `test` (both [N, F] with labels in [0, num_classes)), on
// `device`. Progress stage "linear probe" counts epochs. Throws InputError when the feature widths differ, a set
// is empty, or `train` has a single sample.
LinearProbeResult linear_probe(const FeatureSet& train, const FeatureSet& test, const LinearProbeOptions& options,
                               torch::Device device = torch::kCPU, const ProgressFn& progress = {});

struct KnnOptions {
  int64_t k = 20;
  double temperature = 0.07;
  int64_t chunk = 256;  // test rows per similarity block ([chunk, N_train] floats in memory)
};

// Top-1 of the kNN classifier: features L2-normalised, cosine similarity, each of the k nearest training
// samples votes for its class with weight exp(similarity / temperature). Progress stage "knn" counts test rows.
double knn_top1(const FeatureSet& train, const FeatureSet& test, const KnnOptions& options,
                torch::Device device = torch::kCPU, const ProgressFn& progress = {});

}  // namespace ijepa::eval
