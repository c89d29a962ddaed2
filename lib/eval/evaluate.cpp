#include "eval/evaluate.h"

#include <chrono>
#include <functional>

#include "common/clock.h"
#include "common/errors.h"

namespace ijepa::eval {

namespace {

using common::seconds_since;

FeatureOptions feature_options(const EvalOptions& o, const std::string& stage) {
  FeatureOptions f;
  f.pooling = o.pooling;
  f.batch_size = o.batch_size;
  f.num_workers = o.num_workers;
  f.bf16 = o.bf16;
  f.progress = o.progress;
  f.stage = stage;
  return f;
}

using Extract = std::function<FeatureSet(std::shared_ptr<const data::Dataset>, const FeatureOptions&)>;

EvalResult extract_and_probe(std::shared_ptr<const data::Dataset> train, std::shared_ptr<const data::Dataset> test,
                             const EvalOptions& options, const Extract& extract) {
  data::check_same_classes(*train, *test);
  const auto start = std::chrono::steady_clock::now();
  const auto train_features =
      extract(spread_subset(std::move(train), options.max_train_samples), feature_options(options, "features train"));
  const auto test_features =
      extract(spread_subset(std::move(test), options.max_test_samples), feature_options(options, "features test"));
  const double feature_seconds = seconds_since(start);
  auto result = evaluate_features(train_features, test_features, options);
  result.feature_seconds = feature_seconds;
  return result;
}

}  // namespace

Protocol parse_protocol(const std::string& name) {
  if (name == "linear") return Protocol::kLinear;
  if (name == "knn") return Protocol::kKnn;
  if (name == "both") return Protocol::kBoth;
  throw common::InputError("protocol: '" + name + "' is not one of linear, knn, both");
}

std::string to_string(Protocol protocol) {
  switch (protocol) {
    case Protocol::kLinear:
      return "linear";
    case Protocol::kKnn:
      return "knn";
    default:
      return "both";
  }
}

EvalResult evaluate(model::VisionTransformer& encoder, std::shared_ptr<const data::Dataset> train,
                    std::shared_ptr<const data::Dataset> test, const EvalOptions& options) {
  return extract_and_probe(std::move(train), std::move(test), options,
                           [&](std::shared_ptr<const data::Dataset> d, const FeatureOptions& f) {
                             return extract_features(encoder, std::move(d), f);
                           });
}

EvalResult evaluate_pixels(std::shared_ptr<const data::Dataset> train, std::shared_ptr<const data::Dataset> test,
                           int64_t crop_size, const EvalOptions& options) {
  return extract_and_probe(std::move(train), std::move(test), options,
                           [&](std::shared_ptr<const data::Dataset> d, const FeatureOptions& f) {
                             return pixel_features(std::move(d), crop_size, f);
                           });
}

EvalResult evaluate_features(const FeatureSet& train, const FeatureSet& test, const EvalOptions& options) {
  EvalResult r;
  r.train_samples = train.features.size(0);
  r.test_samples = test.features.size(0);
  r.train_skipped = train.skipped;
  r.test_skipped = test.skipped;
  r.feature_dim = train.features.size(1);
  r.num_classes = std::max(train.num_classes, test.num_classes);
  if (options.protocol != Protocol::kKnn) {
    const auto start = std::chrono::steady_clock::now();
    const auto linear = linear_probe(train, test, options.linear, options.device, options.progress);
    r.linear_top1 = linear.test_top1;
    r.linear_train_top1 = linear.train_top1;
    r.linear_seconds = seconds_since(start);
  }
  if (options.protocol != Protocol::kLinear) {
    const auto start = std::chrono::steady_clock::now();
    r.knn_top1 = knn_top1(train, test, options.knn, options.device, options.progress);
    r.knn_seconds = seconds_since(start);
  }
  return r;
}

}  // namespace ijepa::eval
