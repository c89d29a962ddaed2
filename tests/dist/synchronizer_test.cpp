// GradientSynchronizer on one process: gradients live in buckets, hooks start buckets, unused parameters,
// foreign gradients, compression and misuse.
#include "dist/gradient_synchronizer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/errors.h"
#include "dist/single_process_communicator.h"
#include "dist_test_util.h"

namespace ijepa::dist {
namespace {

using testing::TinyNet;

void expect_grads(TinyNet& net, const std::vector<torch::Tensor>& expected, double rtol = 0, double atol = 0) {
  const auto params = net->named_parameters();
  for (size_t i = 0; i < expected.size(); ++i) {
    const torch::Tensor grad = params[i].value().grad();
    ASSERT_TRUE(grad.defined()) << params[i].key();
    EXPECT_TRUE(torch::allclose(grad, expected[i], rtol, atol)) << params[i].key();
  }
}

class SynchronizerTest : public ::testing::Test {
 protected:
  SingleProcessCommunicator comm_;
  TinyNet net_ = testing::make_net();
  TinyNet reference_ = testing::make_net();
};

TEST_F(SynchronizerTest, GradientsAreViewsIntoBuckets) {
  GradientSynchronizer sync(comm_, net_->named_parameters(), testing::small_buckets());
  ASSERT_EQ(sync.buckets().size(), 3u);
  // Bucket 0 holds aux (last registered), bucket 2 holds fc1.
  auto storage_of = [](const torch::Tensor& p) { return p.grad().storage().data_ptr().get(); };
  EXPECT_EQ(storage_of(net_->aux->weight), storage_of(net_->aux->bias));
  EXPECT_EQ(storage_of(net_->fc1->weight), storage_of(net_->fc1->bias));
  EXPECT_NE(storage_of(net_->fc1->weight), storage_of(net_->aux->weight));
  EXPECT_NE(sync.layout().find("0 fc1.weight [16, 8] Float bucket 2"), std::string::npos);
}

TEST_F(SynchronizerTest, ReducedGradientsMatchPlainBackward) {
  GradientSynchronizer sync(comm_, net_->named_parameters(), testing::small_buckets());
  for (int64_t step = 0; step < 2; ++step) {
    const auto [x, y] = testing::global_batch(6, step);
    sync.zero_grad();
    testing::loss_of(net_, x, y, true).backward();
    sync.finish();
    expect_grads(net_, testing::gradients_of(reference_, x, y));
    EXPECT_TRUE(sync.unused_parameters().empty());
  }
  const SyncStats stats = sync.stats();
  EXPECT_EQ(stats.steps, 2);
  EXPECT_EQ(stats.last_buckets_started_in_backward, 3);
  EXPECT_EQ(stats.bytes_per_step, 4 * (16 * 8 + 16 + 4 * 16 + 4 + 4 * 8 + 4));
  EXPECT_GE(stats.exposed_seconds, stats.last_exposed_seconds);
}

TEST_F(SynchronizerTest, BackwardThroughTheSynchronizerGivesTheSameGradients) {
  GradientSynchronizer sync(comm_, net_->named_parameters(), testing::small_buckets());
  const auto [x, y] = testing::global_batch(6);
  sync.zero_grad();
  sync.backward(testing::loss_of(net_, x, y, true));
  sync.finish();
  expect_grads(net_, testing::gradients_of(reference_, x, y));
}

TEST_F(SynchronizerTest, WithoutOverlapEveryBucketStartsInFinish) {
  GradientSynchronizer sync(comm_, net_->named_parameters(), testing::small_buckets(), /*overlap=*/false);
  const auto [x, y] = testing::global_batch(4);
  sync.zero_grad();
  testing::loss_of(net_, x, y, true).backward();
  sync.finish();
  EXPECT_EQ(sync.stats().last_buckets_started_in_backward, 0);
  expect_grads(net_, testing::gradients_of(reference_, x, y));
}

TEST_F(SynchronizerTest, UnusedParametersCountAsZero) {
  GradientSynchronizer sync(comm_, net_->named_parameters(), testing::small_buckets());
  const auto [x, y] = testing::global_batch(4);
  sync.zero_grad();
  testing::loss_of(net_, x, y, /*use_aux=*/false).backward();
  sync.finish();
  EXPECT_EQ(sync.unused_parameters(), (std::vector<std::string>{"aux.weight", "aux.bias"}));
  // aux sits in bucket 0, so nothing could start during backward.
  EXPECT_EQ(sync.stats().last_buckets_started_in_backward, 0);
  expect_grads(net_, testing::gradients_of(reference_, x, y, /*use_aux=*/false));
  EXPECT_EQ(net_->aux->weight.grad().abs().sum().item<float>(), 0.0f);
}

TEST_F(SynchronizerTest, GradientsResetToUndefinedAreMovedBackIntoBuckets) {
  GradientSynchronizer sync(comm_, net_->named_parameters(), testing::small_buckets());
  const auto [x, y] = testing::global_batch(4);
  // What zero_grad(set_to_none) does; LibTorch's Optimizer::zero_grad cannot (it detach_()es the views).
  for (auto& p : net_->parameters()) p.mutable_grad() = torch::Tensor();
  testing::loss_of(net_, x, y, true).backward();
  sync.finish();
  expect_grads(net_, testing::gradients_of(reference_, x, y));
  EXPECT_EQ(net_->fc1->weight.grad().storage().data_ptr().get(), net_->fc1->bias.grad().storage().data_ptr().get());
}

TEST_F(SynchronizerTest, ZeroGradZeroesEveryGradient) {
  GradientSynchronizer sync(comm_, net_->named_parameters(), testing::small_buckets());
  const auto [x, y] = testing::global_batch(4);
  testing::loss_of(net_, x, y, true).backward();
  sync.finish();
  sync.zero_grad();
  for (const auto& p : net_->parameters()) EXPECT_EQ(p.grad().abs().sum().item<float>(), 0.0f);
}

TEST_F(SynchronizerTest, Bf16CompressionStaysCloseAndHalvesTheBytes) {
  common::DistConfig config = testing::small_buckets();
  config.compress_bf16 = true;
  GradientSynchronizer sync(comm_, net_->named_parameters(), config);
  const auto [x, y] = testing::global_batch(4);
  sync.zero_grad();
  testing::loss_of(net_, x, y, true).backward();
  sync.finish();
  expect_grads(net_, testing::gradients_of(reference_, x, y), 1e-2, 1e-3);
  EXPECT_EQ(sync.stats().bytes_per_step, 2 * (16 * 8 + 16 + 4 * 16 + 4 + 4 * 8 + 4));
}

TEST_F(SynchronizerTest, ASecondBackwardBeforeFinishIsAnError) {
  GradientSynchronizer sync(comm_, net_->named_parameters(), testing::small_buckets());
  const auto [x, y] = testing::global_batch(4);
  testing::loss_of(net_, x, y, true).backward();
  try {
    testing::loss_of(net_, x, y, true).backward();
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("received a second gradient before finish()"), std::string::npos);
  }
}

// The sum of a pre-divided loss must not outlive a backward that threw: the next plain step would be summed.
TEST(Synchronizer, AFailedBackwardLeavesTheNextPlainStepAveraged) {
  testing::RecordingCommunicator comm;
  TinyNet net = testing::make_net();
  GradientSynchronizer sync(comm, net->named_parameters(), testing::small_buckets());
  const auto [x, y] = testing::global_batch(4);
  sync.zero_grad();
  sync.backward(testing::loss_of(net, x, y, true));
  sync.finish();
  EXPECT_EQ(comm.reduce_ops, std::vector<ReduceOp>(3, ReduceOp::kSum));
  comm.reduce_ops.clear();
  EXPECT_ANY_THROW(sync.backward(torch::zeros({})));  // nothing to differentiate
  sync.zero_grad();
  testing::loss_of(net, x, y, true).backward();
  sync.finish();
  EXPECT_EQ(comm.reduce_ops, std::vector<ReduceOp>(3, ReduceOp::kAverage));
}

TEST_F(SynchronizerTest, TheLayoutNamesTheWireDtype) {
  EXPECT_NE(GradientSynchronizer(comm_, net_->named_parameters(), testing::small_buckets())
                .layout()
                .find("fp32 buckets travel as fp32 (dist.compress_bf16)"),
            std::string::npos);
  common::DistConfig config = testing::small_buckets();
  config.compress_bf16 = true;
  EXPECT_NE(GradientSynchronizer(comm_, net_->named_parameters(), config).layout().find("travel as bf16"),
            std::string::npos);
}

TEST_F(SynchronizerTest, SkipsFrozenParameters) {
  net_->fc1->weight.set_requires_grad(false);
  GradientSynchronizer sync(comm_, net_->named_parameters(), testing::small_buckets());
  EXPECT_EQ(sync.layout().find("fc1.weight"), std::string::npos);
  EXPECT_NE(sync.layout().find("fc1.bias"), std::string::npos);
}

TEST_F(SynchronizerTest, HooksGoAwayWithTheSynchronizer) {
  {
    GradientSynchronizer first(comm_, net_->named_parameters(), testing::small_buckets());
    EXPECT_THROW(GradientSynchronizer(comm_, net_->named_parameters(), testing::small_buckets()),
                 std::invalid_argument);
  }
  GradientSynchronizer second(comm_, net_->named_parameters(), testing::small_buckets());
  const auto [x, y] = testing::global_batch(4);
  second.zero_grad();
  testing::loss_of(net_, x, y, true).backward();
  second.finish();
  expect_grads(net_, testing::gradients_of(reference_, x, y));
}

TEST_F(SynchronizerTest, RejectsBadBucketSizesAndEmptyParameterLists) {
  common::DistConfig config;
  config.bucket_mb = 0;
  EXPECT_THROW(GradientSynchronizer(comm_, net_->named_parameters(), config), common::InputError);
  config = common::DistConfig();
  config.min_buckets = 0;
  EXPECT_THROW(GradientSynchronizer(comm_, net_->named_parameters(), config), common::InputError);
  for (auto& p : net_->parameters()) p.set_requires_grad(false);
  EXPECT_THROW(GradientSynchronizer(comm_, net_->named_parameters(), common::DistConfig()), std::invalid_argument);
}

}  // namespace
}  // namespace ijepa::dist
