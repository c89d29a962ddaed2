// The synchronizer and the consistency checks on 2 ranks: gradients equal the mean of the ranks' gradients
// and a one-process run on the whole batch; layouts agree; mismatches and divergence name the rank.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/errors.h"
#include "dist/consistency.h"
#include "dist/gradient_synchronizer.h"
#include "dist/mpi_communicator.h"
#include "dist_test_util.h"

namespace ijepa::dist {
namespace {

using testing::TinyNet;

class MpiSynchronizer : public ::testing::Test {
 protected:
  MpiCommunicator comm_{60.0};
  int rank_ = comm_.rank();
};

std::string message_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

TEST_F(MpiSynchronizer, AutoBackendUnderMpirunIsMpi) {
  auto comm = make_communicator(common::DistConfig(), torch::kCPU);
  EXPECT_EQ(comm->backend(), "mpi");
  EXPECT_EQ(comm->world_size(), 2);
}

TEST_F(MpiSynchronizer, BucketLayoutIsIdenticalOnBothRanks) {
  TinyNet net = testing::make_net();
  GradientSynchronizer sync(comm_, net->named_parameters(), testing::small_buckets());
  EXPECT_EQ(sync.buckets().size(), 3u);
  const auto layouts = comm_.all_gather_bytes(sync.layout());
  EXPECT_EQ(layouts[0], layouts[1]);
}

TEST_F(MpiSynchronizer, GradientsAreTheMeanOverRanksAndMatchOneProcessOnTheWholeBatch) {
  constexpr int64_t kPerRank = 4;
  TinyNet net = testing::make_net(), whole = testing::make_net(), shard = testing::make_net();
  GradientSynchronizer sync(comm_, net->named_parameters(), testing::small_buckets());
  torch::optim::SGD optimizer(net->parameters(), torch::optim::SGDOptions(0.1));
  torch::optim::SGD whole_optimizer(whole->parameters(), torch::optim::SGDOptions(0.1));
  for (int64_t step = 0; step < 3; ++step) {
    const auto [x, y] = testing::global_batch(2 * kPerRank, step);
    auto rows = [&](const torch::Tensor& t, int r) { return t.narrow(0, r * kPerRank, kPerRank); };
    testing::copy_weights(net, shard);
    const auto g0 = testing::gradients_of(shard, rows(x, 0), rows(y, 0));
    const auto g1 = testing::gradients_of(shard, rows(x, 1), rows(y, 1));
    const auto g_whole = testing::gradients_of(whole, x, y);

    // Steps 0 and 2 sum gradients of a pre-divided loss; step 1 averages plain ones.
    sync.zero_grad();
    const torch::Tensor loss = testing::loss_of(net, rows(x, rank_), rows(y, rank_), true);
    if (step % 2 == 0) {
      sync.backward(loss);
    } else {
      loss.backward();
    }
    sync.finish();
    EXPECT_EQ(sync.stats().last_buckets_started_in_backward, 3);
    const auto params = net->named_parameters();
    for (size_t i = 0; i < g0.size(); ++i) {
      const torch::Tensor grad = params[i].value().grad();
      EXPECT_TRUE(torch::allclose(grad, (g0[i] + g1[i]) / 2, 1e-6, 1e-8)) << params[i].key() << " step " << step;
      EXPECT_TRUE(torch::allclose(grad, g_whole[i], 1e-5, 1e-7)) << params[i].key() << " step " << step;
    }
    optimizer.step();
    whole_optimizer.step();
  }
  const auto mine = net->parameters(), theirs = whole->parameters();
  for (size_t i = 0; i < mine.size(); ++i) EXPECT_TRUE(torch::allclose(mine[i], theirs[i], 1e-5, 1e-7)) << i;
  verify_tensors_match(comm_, "weights after 3 steps", net->parameters());
}

TEST_F(MpiSynchronizer, AParameterUnusedOnOneRankCountsAsZeroThere) {
  TinyNet net = testing::make_net(), reference = testing::make_net();
  GradientSynchronizer sync(comm_, net->named_parameters(), testing::small_buckets());
  const auto [x, y] = testing::global_batch(4, 7);
  const auto with_aux = testing::gradients_of(reference, x, y, true);
  const auto without_aux = testing::gradients_of(reference, x, y, false);
  sync.zero_grad();
  testing::loss_of(net, x, y, /*use_aux=*/rank_ == 0).backward();
  sync.finish();
  const auto params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(params[i].grad(), (with_aux[i] + without_aux[i]) / 2, 1e-6, 1e-8)) << i;
  }
  const auto unused = sync.unused_parameters();
  EXPECT_EQ(unused.size(), rank_ == 0 ? 0u : 2u);
}

TEST_F(MpiSynchronizer, Bf16CompressionStaysCloseToTheMean) {
  common::DistConfig config = testing::small_buckets();
  config.compress_bf16 = true;
  TinyNet net = testing::make_net(), shard = testing::make_net();
  GradientSynchronizer sync(comm_, net->named_parameters(), config);
  const auto [x, y] = testing::global_batch(8, 3);
  const auto g0 = testing::gradients_of(shard, x.narrow(0, 0, 4), y.narrow(0, 0, 4));
  const auto g1 = testing::gradients_of(shard, x.narrow(0, 4, 4), y.narrow(0, 4, 4));
  sync.zero_grad();
  testing::loss_of(net, x.narrow(0, 4 * rank_, 4), y.narrow(0, 4 * rank_, 4), true).backward();
  sync.finish();
  const auto params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(params[i].grad(), (g0[i] + g1[i]) / 2, 2e-2, 1e-3)) << i;
  }
}

TEST_F(MpiSynchronizer, MismatchedParameterShapesAreRejectedNamingTheRank) {
  TinyNet net = testing::make_net(rank_ == 1 ? 17 : 16);
  const std::string message =
      message_of([&] { GradientSynchronizer sync(comm_, net->named_parameters(), testing::small_buckets()); });
  EXPECT_NE(message.find("parameter layout (names, shapes, dtypes, buckets, wire dtype) differs across ranks: rank 1 "
                         "differs from rank 0; first difference at line 1: rank 0 has '0 fc1.weight [16, 8] Float"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("rank 1 has '0 fc1.weight [17, 8] Float"), std::string::npos) << message;
}

// Otherwise rank 1 would all-reduce half as many bytes per bucket: an MPI truncation, or silence with NCCL.
TEST_F(MpiSynchronizer, RanksThatDifferInBf16CompressionAreRejectedNamingTheRank) {
  TinyNet net = testing::make_net();
  common::DistConfig config = testing::small_buckets();
  config.compress_bf16 = rank_ == 1;
  const std::string message = message_of([&] { GradientSynchronizer sync(comm_, net->named_parameters(), config); });
  EXPECT_NE(message.find("differs across ranks: rank 1 differs from rank 0; first difference at line 7: rank 0 has "
                         "'fp32 buckets travel as fp32 (dist.compress_bf16)', rank 1 has 'fp32 buckets travel as bf16"),
            std::string::npos)
      << message;
}

TEST_F(MpiSynchronizer, AConfigThatDiffersIsRejectedNamingTheRank) {
  common::Config config;
  config.optimization.lr = rank_ == 1 ? 0.002 : 0.001;
  EXPECT_THROW(verify_same_across_ranks(comm_, "config", common::to_yaml(config)), common::InputError);
  const std::string message = message_of([&] {
    verify_same_across_ranks(comm_, "config", "optimization:\n  lr: " + std::string(rank_ ? "0.002" : "0.001") + "\n");
  });
  EXPECT_EQ(message,
            "config differs across ranks: rank 1 differs from rank 0; first difference at line 2: rank 0 has "
            "'  lr: 0.001', rank 1 has '  lr: 0.002'");
  config.optimization.lr = 0.001;
  EXPECT_NO_THROW(verify_same_across_ranks(comm_, "config", common::to_yaml(config)));
}

TEST_F(MpiSynchronizer, DivergedWeightsAreReportedNamingTheRank) {
  const torch::Tensor weights = torch::ones({10});
  EXPECT_NO_THROW(verify_tensors_match(comm_, "encoder weights", {weights}));
  if (rank_ == 1) weights[3] += 1e-6;
  const std::string message = message_of([&] { verify_tensors_match(comm_, "encoder weights", {weights}); });
  EXPECT_EQ(message, "encoder weights diverged across ranks: rank 1 differs from rank 0");
}

TEST_F(MpiSynchronizer, BroadcastTensorsGivesEveryRankRank0sValues) {
  TinyNet net = testing::make_net();
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.add_(rank_);
  }
  std::vector<torch::Tensor> tensors = net->parameters();
  tensors.push_back(torch::full({7}, rank_ + 0.5, torch::kBFloat16));
  tensors.push_back(torch::full({1}, int64_t(10 + rank_), torch::kLong));
  tensors.push_back(torch::arange(12, torch::kFloat).view({3, 4}).add(rank_).t());  // not contiguous
  std::vector<torch::Tensor> before;
  for (const auto& t : tensors) before.push_back(t.clone());
  broadcast_tensors(comm_, tensors, 0, /*max_buffer_bytes=*/256);
  EXPECT_NO_THROW(verify_tensors_match(comm_, "broadcast tensors", tensors));
  if (rank_ == 0) {
    for (size_t i = 0; i < tensors.size(); ++i) EXPECT_TRUE(torch::equal(tensors[i], before[i])) << i;
  }
  EXPECT_EQ(tensors[tensors.size() - 2].item<int64_t>(), 10);
}

TEST_F(MpiSynchronizer, BroadcastTensorsRejectsListsThatDiffer) {
  std::vector<torch::Tensor> tensors = {torch::zeros({4})};
  if (rank_ == 1) tensors.push_back(torch::zeros({2}));
  const std::string message = message_of([&] { broadcast_tensors(comm_, tensors); });
  EXPECT_NE(message.find("the tensor list to broadcast differs across ranks: rank 1 differs from rank 0"),
            std::string::npos)
      << message;
}

}  // namespace
}  // namespace ijepa::dist
