// The probes and the evaluation entry point: separable synthetic data is classified almost perfectly, random
// labels stay near chance, and the whole path (loader, frozen encoder, probes) runs on a tiny in-memory dataset.
#include "eval/probes.h"

#include <gtest/gtest.h>

#include "common/errors.h"
#include "data/data_test_util.h"
#include "eval/encoder_io.h"
#include "eval/evaluate.h"
#include "eval/features.h"
#include "input_error.h"
#include "model/vit_config.h"

namespace ijepa::eval {
namespace {

constexpr int64_t kClasses = 10;

// Gaussian clusters: class c around a random centre with unit noise, in `dim` dimensions.
FeatureSet clusters(int64_t n, int64_t dim, const torch::Tensor& centres, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  FeatureSet set;
  set.labels = torch::randint(kClasses, {n}, generator, torch::kInt64);
  set.features = centres.index_select(0, set.labels) + torch::randn({n, dim}, generator, torch::kFloat32);
  set.num_classes = kClasses;
  return set;
}

struct Separable {
  FeatureSet train, test;
};

Separable separable(int64_t dim = 32) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(1);
  const auto centres = 3.0 * torch::randn({kClasses, dim}, generator, torch::kFloat32);
  return {clusters(2000, dim, centres, 2), clusters(500, dim, centres, 3)};
}

// The same features with labels drawn independently of them.
FeatureSet relabelled(FeatureSet set, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  set.labels = torch::randint(kClasses, {set.labels.size(0)}, generator, torch::kInt64);
  return set;
}

LinearProbeOptions quick_linear() {
  LinearProbeOptions o;
  o.epochs = 10;
  o.batch_size = 128;
  o.lr = 1e-2;
  return o;
}

TEST(LinearProbe, SeparatesClustersAndNotRandomLabels) {
  const auto data = separable();
  const auto result = linear_probe(data.train, data.test, quick_linear());
  EXPECT_GT(result.test_top1, 0.97);
  EXPECT_GT(result.train_top1, 0.97);

  auto batchnorm = quick_linear();
  batchnorm.batchnorm = true;
  EXPECT_GT(linear_probe(data.train, data.test, batchnorm).test_top1, 0.97);

  const auto chance = linear_probe(relabelled(data.train, 4), relabelled(data.test, 5), quick_linear());
  EXPECT_LT(chance.test_top1, 0.2);  // chance is 0.1 over 500 test samples
}

TEST(LinearProbe, IsDeterministicForASeed) {
  const auto data = separable();
  const auto a = linear_probe(data.train, data.test, quick_linear());
  const auto b = linear_probe(data.train, data.test, quick_linear());
  EXPECT_EQ(a.test_top1, b.test_top1);
  EXPECT_EQ(a.final_loss, b.final_loss);
}

TEST(LinearProbe, NeedsTwoTrainingSamples) {
  auto data = separable();
  data.train.features = data.train.features.narrow(0, 0, 1);
  data.train.labels = data.train.labels.narrow(0, 0, 1);
  ijepa::testing::expect_input_error([&] { linear_probe(data.train, data.test, quick_linear()); },
                                     {"linear probe: needs at least 2 training samples, got 1"});
}

TEST(LinearProbe, BatchNormSurvivesABatchOfOne) {
  auto data = separable();
  data.train.features = data.train.features.narrow(0, 0, 129);
  data.train.labels = data.train.labels.narrow(0, 0, 129);
  auto o = quick_linear();
  o.batchnorm = true;
  EXPECT_NO_THROW(linear_probe(data.train, data.test, o));
}

TEST(Knn, SeparatesClustersAndNotRandomLabels) {
  const auto data = separable();
  EXPECT_GT(knn_top1(data.train, data.test, {}), 0.97);
  EXPECT_LT(knn_top1(relabelled(data.train, 4), relabelled(data.test, 5), {}), 0.2);
}

TEST(Knn, WeightsVotesBySimilarity) {
  // Two training points of class 1 nearly opposite the query, one of class 0 next to it: with k = 3 the close
  // neighbour's weight exp(1/T) outvotes two weights of exp(-0.9/T).
  FeatureSet train, test;
  train.features = torch::tensor({{1.0f, 0.0f}, {-0.9f, 0.43f}, {-0.9f, -0.43f}});
  train.labels = torch::tensor({0, 1, 1}, torch::kInt64);
  train.num_classes = 2;
  test.features = torch::tensor({{2.0f, 0.1f}});
  test.labels = torch::tensor({0}, torch::kInt64);
  test.num_classes = 2;
  KnnOptions o;
  o.k = 3;
  EXPECT_EQ(knn_top1(train, test, o), 1.0);
  o.temperature = 1e3;  // nearly unweighted: the majority wins
  EXPECT_EQ(knn_top1(train, test, o), 0.0);
}

TEST(Probes, RejectMismatchedOrEmptySets) {
  const auto data = separable();
  const auto narrow = separable(16);
  EXPECT_THROW(linear_probe(data.train, narrow.test, quick_linear()), common::InputError);
  EXPECT_THROW(knn_top1(data.train, narrow.test, {}), common::InputError);
  FeatureSet empty;
  EXPECT_THROW(knn_top1(data.train, empty, {}), common::InputError);
}

// Images of 16x16 with one bright 4x4 square whose position is the class, over faint noise.
class SquaresDataset : public data::Dataset {
 public:
  SquaresDataset(int64_t n, int channels) : n_(n), channels_(channels) {}
  int64_t size() const override { return n_; }
  int channels() const override { return channels_; }
  int64_t num_classes() const override { return 4; }
  int64_t label(int64_t i) const override { return i % 4; }
  data::Image load(int64_t i) const override {
    data::Image image{16, 16, channels_, std::vector<uint8_t>(16 * 16 * channels_)};
    const int top = static_cast<int>(label(i) / 2) * 8 + 2, left = static_cast<int>(label(i) % 2) * 8 + 2;
    for (int y = 0; y < 16; ++y) {
      for (int x = 0; x < 16; ++x) {
        const bool lit = y >= top && y < top + 4 && x >= left && x < left + 4;
        for (int c = 0; c < channels_; ++c) {
          image.pixels[(y * 16 + x) * channels_ + c] = static_cast<uint8_t>(lit ? 220 : (i * 31 + y * 7 + x) % 40);
        }
      }
    }
    return image;
  }
  std::string name(int64_t i) const override { return "square#" + std::to_string(i); }

 private:
  int64_t n_;
  int channels_;
};

model::VisionTransformer small_encoder() {
  model::ViTConfig c{16, 4, 1, 32, 2, 2, 64};
  return random_encoder(c, model::predictor_for(c, 16, 1), 0);
}

EvalOptions quick_eval() {
  EvalOptions o;
  o.batch_size = 16;
  o.num_workers = 1;
  o.linear = quick_linear();
  o.linear.epochs = 200;  // one step per epoch on these tiny sets
  o.knn.k = 5;
  return o;
}

TEST(Evaluate, FrozenRandomEncoderSeparatesSquares) {
  auto encoder = small_encoder();
  const auto train = std::make_shared<SquaresDataset>(64, 1);
  const auto test = std::make_shared<SquaresDataset>(20, 1);
  std::vector<std::string> stages;
  auto o = quick_eval();
  o.progress = [&](const std::string& stage, int64_t done, int64_t total) {
    EXPECT_LE(done, total);
    if (stages.empty() || stages.back() != stage) stages.push_back(stage);
  };
  torch::manual_seed(11);
  const auto expected_draw = torch::rand({4});
  std::vector<torch::Tensor> weights;
  for (const auto& p : encoder->parameters()) weights.push_back(p.detach().clone());
  encoder->train();  // features are taken in eval mode, then the caller's mode is restored
  torch::manual_seed(11);
  const auto r = evaluate(encoder, train, test, o);
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected_draw)) << "evaluation must not draw from the global generator";
  EXPECT_EQ(r.train_samples, 64);
  EXPECT_EQ(r.test_samples, 20);
  EXPECT_EQ(r.feature_dim, 32);
  ASSERT_TRUE(r.linear_top1 && r.knn_top1);
  EXPECT_GE(*r.knn_top1, 0.9);
  EXPECT_GE(*r.linear_top1, 0.9);
  EXPECT_EQ(stages, (std::vector<std::string>{"features train", "features test", "linear probe", "knn"}));
  const auto after = encoder->parameters();
  ASSERT_EQ(after.size(), weights.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_TRUE(torch::equal(after[i], weights[i])) << "the encoder stays as it was";
    EXPECT_FALSE(after[i].requires_grad());
  }
  EXPECT_TRUE(encoder->is_training()) << "its mode is restored";
}

TEST(Evaluate, ProtocolsPoolingAndLimits) {
  auto encoder = small_encoder();
  const auto train = std::make_shared<SquaresDataset>(64, 1);
  const auto test = std::make_shared<SquaresDataset>(20, 1);
  auto o = quick_eval();
  o.protocol = Protocol::kKnn;
  o.pooling = Pooling::kAvgLast4;
  o.max_train_samples = 32;
  o.max_test_samples = 8;
  const auto r = evaluate(encoder, train, test, o);
  EXPECT_FALSE(r.linear_top1.has_value());
  ASSERT_TRUE(r.knn_top1.has_value());
  EXPECT_EQ(r.feature_dim, 2 * 32) << "a depth-2 encoder has two layers to concatenate";
  EXPECT_EQ(r.train_samples, 32);
  EXPECT_EQ(r.test_samples, 8);
}

TEST(PooledFeatures, GridKeepsTheTokenMapAndPoolsALargerOneToSevenBySeven) {
  torch::NoGradGuard no_grad;
  auto encoder = small_encoder();  // 16x16 images, 4x4 patches: a 4x4 grid of 32-wide tokens
  const auto images = torch::randn({3, 1, 16, 16});
  const auto tokens = encoder->forward(images);  // [3, 16, 32]
  const auto grid = pooled_features(encoder, images, Pooling::kGrid);
  ASSERT_EQ(grid.sizes(), (std::vector<int64_t>{3, 32 * 16}));
  // feature d * 16 + t is token t's dimension d: the whole map, nothing averaged
  EXPECT_TRUE(torch::equal(grid.view({3, 32, 16}), tokens.transpose(1, 2)));

  const auto large = torch::randn({2, 1, 36, 36});  // a 9x9 grid (other sizes get the sin-cos table of their grid)
  const auto large_tokens = encoder->forward(large).transpose(1, 2).reshape({2, 32, 9, 9});
  const auto pooled = pooled_features(encoder, large, Pooling::kGrid);
  ASSERT_EQ(pooled.sizes(), (std::vector<int64_t>{2, 32 * 7 * 7}));
  // cell (0, 0) of 7 over 9 rows and columns averages rows and columns 0-1 (adaptive pooling's bins)
  EXPECT_TRUE(torch::allclose(pooled.view({2, 32, 7, 7}).select(3, 0).select(2, 0),
                              large_tokens.narrow(2, 0, 2).narrow(3, 0, 2).mean({2, 3})));
}

TEST(PooledFeatures, WiderModelsGetFewerCellsToStayNearTenThousandFeatures) {
  EXPECT_EQ(grid_cells(32), 7);
  EXPECT_EQ(grid_cells(192), 7);   // ViT-tiny: 9408
  EXPECT_EQ(grid_cells(384), 5);   // small: 9600
  EXPECT_EQ(grid_cells(768), 3);   // base: 6912
  EXPECT_EQ(grid_cells(1024), 3);  // large: 9216
  EXPECT_EQ(grid_cells(1280), 2);  // huge: 5120
  EXPECT_EQ(grid_cells(20000), 1);
}

TEST(Evaluate, RawPixelsAndChannelMismatch) {
  const auto train = std::make_shared<SquaresDataset>(40, 1);
  const auto test = std::make_shared<SquaresDataset>(12, 1);
  auto o = quick_eval();
  o.protocol = Protocol::kLinear;
  const auto r = evaluate_pixels(train, test, 16, o);
  EXPECT_EQ(r.feature_dim, 16 * 16);
  EXPECT_GE(*r.linear_top1, 0.9);

  auto encoder = small_encoder();
  const auto rgb = std::make_shared<SquaresDataset>(8, 3);
  EXPECT_THROW(evaluate(encoder, rgb, rgb, o), common::InputError);
}

TEST(Evaluate, ImageFolderSplitsMustNameTheSameClasses) {
  ijepa::testing::TempDir dir;
  const std::string png = data::testing::encode_png(4, 4, PNG_COLOR_TYPE_GRAY, 8, std::vector<uint8_t>(16, 9));
  for (const char* file : {"train/cat/1.png", "train/dog/2.png", "val/cat/3.png", "val/dot/4.png"}) {
    ijepa::testing::write_file(dir / file, png);
  }
  const auto train = data::open_dataset("imagefolder", dir.path().string(), "train");
  const auto test = data::open_dataset("imagefolder", dir.path().string(), "test");
  ijepa::testing::expect_input_error([&] { evaluate_pixels(train, test, 4, quick_eval()); },
                                     {"dataset mismatch", "differ, first at " + (dir / "train/dog")});
}

TEST(SpreadSubset, TakesEvenlySpacedSamples) {
  const std::shared_ptr<const data::Dataset> all = std::make_shared<SquaresDataset>(100, 1);
  const auto subset = spread_subset(all, 8);
  ASSERT_EQ(subset->size(), 8);
  std::vector<std::string> names;
  for (int64_t i = 0; i < subset->size(); ++i) names.push_back(subset->name(i));
  EXPECT_EQ(names.front(), "square#0");
  EXPECT_EQ(names[1], "square#12");
  EXPECT_EQ(names.back(), "square#87");
  EXPECT_EQ(spread_subset(all, 0), all);
  EXPECT_EQ(spread_subset(all, 100), all);
}

TEST(Parsing, NamesAreCheckedWithTheirFlag) {
  EXPECT_EQ(parse_protocol("knn"), Protocol::kKnn);
  EXPECT_EQ(parse_pooling("avg4"), Pooling::kAvgLast4);
  EXPECT_EQ(parse_pooling("grid"), Pooling::kGrid);
  EXPECT_EQ(to_string(Pooling::kGrid), "grid");
  EXPECT_EQ(parse_encoder_choice("context"), EncoderChoice::kContext);
  EXPECT_THROW(parse_protocol("svm"), common::InputError);
  EXPECT_THROW(parse_pooling("cls"), common::InputError);
  EXPECT_THROW(parse_encoder_choice("student"), common::InputError);
}

}  // namespace
}  // namespace ijepa::eval
