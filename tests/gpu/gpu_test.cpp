// What only a GPU can check: the NCCL backend on one GPU (world size 1 is what one GPU allows), gradient
// buckets reduced on its stream while backward runs, and the training step on CUDA against the reference's
// golden losses. Registered in CTest (label gpu) where configure saw a GPU; deploy/bench/gpu_checks.sh runs
// the binary on a lent GPU machine. No GPU visible is a failure here, never a skip.
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <utility>

#include "dist/communicator.h"
#include "dist/gradient_synchronizer.h"
#include "dist/nccl_communicator.h"
#include "dist/single_process_communicator.h"
#include "dist_test_util.h"
#include "golden.h"
#include "golden_run.h"

namespace ijepa {
namespace {

using dist::ReduceOp;

class Gpu : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(torch::cuda::is_available()) << "no CUDA device is visible"; }
  const torch::Device cuda_{torch::kCUDA, 0};
};

// Two copies of the tiny network with the same weights on the GPU: one behind a synchronizer, one for reference.
struct NetPair {
  dist::testing::TinyNet net = dist::testing::make_net(), reference = dist::testing::make_net();
  explicit NetPair(torch::Device device) {
    net->to(device);
    reference->to(device);
  }
};

// The tiny network's batch of `step` on the GPU.
std::pair<torch::Tensor, torch::Tensor> batch_on(torch::Device device, int64_t step = 0) {
  const auto [x, y] = dist::testing::global_batch(6, step);
  return {x.to(device), y.to(device)};
}

std::unique_ptr<dist::Communicator> nccl_on_one_gpu() {
  return std::make_unique<dist::NcclCommunicator>(std::make_unique<dist::SingleProcessCommunicator>(torch::kCPU, 60.0),
                                                  /*device_index=*/0, /*timeout_s=*/60.0);
}

TEST_F(Gpu, FactoryChoosesNcclForACudaDevice) {
  common::DistConfig config;  // backend auto
  const auto comm = dist::make_communicator(config, torch::Device(torch::kCUDA));
  EXPECT_EQ(comm->backend(), "nccl");
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_EQ(comm->device(), cuda_);
}

TEST_F(Gpu, NcclCollectivesFollowWorkQueuedOnTheCallersStream) {
  const auto comm = nccl_on_one_gpu();
  // The multiplication is still queued on the current stream when the all-reduce is called: the NCCL stream
  // must wait for it, and the caller's stream for the all-reduce.
  auto x = torch::arange(1 << 22, torch::TensorOptions().dtype(torch::kFloat).device(cuda_));
  x.mul_(3);
  comm->all_reduce(x, ReduceOp::kAverage)->wait();
  EXPECT_TRUE(torch::equal(x.cpu(), 3 * torch::arange(1 << 22, torch::kFloat)));

  auto b = torch::full({1000}, 1.5, torch::TensorOptions().dtype(torch::kBFloat16).device(cuda_));
  comm->all_reduce(b, ReduceOp::kSum)->wait();
  EXPECT_TRUE(torch::equal(b.cpu(), torch::full({1000}, 1.5, torch::kBFloat16)));

  auto n = torch::tensor({7, -2}, torch::TensorOptions().dtype(torch::kLong).device(cuda_));
  auto handle = comm->all_reduce(n, ReduceOp::kSum);
  handle->wait();
  torch::cuda::synchronize();
  EXPECT_TRUE(handle->completed());
  EXPECT_EQ(n.cpu()[0].item<int64_t>(), 7);

  auto r = torch::randn({333}, torch::TensorOptions().device(cuda_));
  const auto before = r.cpu();
  comm->broadcast(r, 0)->wait();
  EXPECT_TRUE(torch::equal(r.cpu(), before));

  EXPECT_EQ(comm->all_gather_bytes("abc"), std::vector<std::string>{"abc"});
  comm->barrier();
  EXPECT_THROW(comm->all_reduce(torch::ones({4}), ReduceOp::kSum), std::exception) << "a CPU tensor";
}

TEST_F(Gpu, NcclSynchronizeWaitsForTheStreamAndReportsAFailure) {
  const auto comm = nccl_on_one_gpu();
  auto x = torch::ones({1 << 24}, torch::TensorOptions().device(cuda_));
  comm->all_reduce(x, ReduceOp::kSum);  // not waited on: synchronize() must wait for it
  comm->synchronize();
  EXPECT_EQ(x.sum().item<double>(), static_cast<double>(1 << 24));
  comm->abort("test", 1);  // one process: marks the communicator failed, as the watchdog does on a timeout
  try {
    comm->synchronize();
    ADD_FAILURE() << "synchronize() after a failure returned";
  } catch (const dist::DistError& e) {
    EXPECT_NE(std::string(e.what()).find("aborted: test"), std::string::npos) << e.what();
  }
}

TEST_F(Gpu, NcclBucketsGiveThePlainBackwardGradients) {
  const auto comm = nccl_on_one_gpu();
  NetPair nets(cuda_);
  auto& [net, reference] = nets;
  dist::GradientSynchronizer sync(*comm, net->named_parameters(), dist::testing::small_buckets());
  ASSERT_EQ(sync.buckets().size(), 3u);
  for (int64_t step = 0; step < 3; ++step) {
    const auto [x, y] = batch_on(cuda_, step);
    sync.zero_grad();
    sync.backward(dist::testing::loss_of(net, x, y, /*use_aux=*/true));
    sync.finish();
    const auto expected = dist::testing::gradients_of(reference, x, y);
    const auto params = net->parameters();
    for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i].grad(), expected[i])) << i;
  }
  EXPECT_EQ(sync.stats().last_buckets_started_in_backward, 3);
}

TEST_F(Gpu, NcclBf16CompressedBucketsStayWithinBf16Rounding) {
  const auto comm = nccl_on_one_gpu();
  NetPair nets(cuda_);
  auto& [net, reference] = nets;
  auto config = dist::testing::small_buckets();
  config.compress_bf16 = true;
  dist::GradientSynchronizer sync(*comm, net->named_parameters(), config);
  const auto [x, y] = batch_on(cuda_);
  sync.zero_grad();
  dist::testing::loss_of(net, x, y, true).backward();
  sync.finish();
  const auto expected = dist::testing::gradients_of(reference, x, y);
  const auto params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(params[i].grad().scalar_type(), torch::kFloat) << i;
    EXPECT_TRUE(torch::allclose(params[i].grad(), expected[i], /*rtol=*/1e-2, /*atol=*/1e-4)) << i;
  }
}

class GpuGolden : public ::testing::TestWithParam<train::testing::GoldenCase> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(torch::cuda::is_available()) << "no CUDA device is visible";
    // Plain fp32 products, as the CPU reference: TF32 would round inputs to 10 mantissa bits.
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
};

TEST_P(GpuGolden, Fp32StepsReproduceTheReferenceLosses) {
  const auto& g = testing::golden()[GetParam().key];
  const auto run = train::testing::run_golden_steps(GetParam(), torch::Device(torch::kCUDA, 0), /*bf16=*/false);
  ASSERT_EQ(run.steps.size(), g["steps"].size());
  for (size_t i = 0; i < run.steps.size(); ++i) {
    const auto& expected = g["steps"][i];
    const double loss = expected["loss"].get<double>();
    EXPECT_NEAR(run.steps[i].loss, loss, 1e-4 * loss) << "step " << i;
    std::printf("%s fp32 step %zu: loss %.7f, reference %.7f, relative difference %.1e\n", GetParam().key, i,
                run.steps[i].loss, loss, std::abs(run.steps[i].loss - loss) / loss);
    EXPECT_NEAR(run.steps[i].encoder_sum, expected["encoder_sum_after_step"].get<double>(), 1e-2) << "step " << i;
    EXPECT_NEAR(run.steps[i].target_sum, expected["target_sum_after_step"].get<double>(), 1e-2) << "step " << i;
  }
}

TEST_P(GpuGolden, Bf16AutocastStepsStayNearTheReferenceLosses) {
  const auto& g = testing::golden()[GetParam().key];
  const auto run = train::testing::run_golden_steps(GetParam(), torch::Device(torch::kCUDA, 0), /*bf16=*/true);
  ASSERT_EQ(run.steps.size(), g["steps"].size());
  for (size_t i = 0; i < run.steps.size(); ++i) {
    const double loss = g["steps"][i]["loss"].get<double>();
    EXPECT_NEAR(run.steps[i].loss, loss, 3e-2 * loss) << "step " << i;  // bf16 keeps 8 mantissa bits
    std::printf("%s bf16 step %zu: loss %.7f, reference (fp32) %.7f, relative difference %.1e\n", GetParam().key, i,
                run.steps[i].loss, loss, std::abs(run.steps[i].loss - loss) / loss);
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, GpuGolden, ::testing::ValuesIn(train::testing::golden_cases()),
                         [](const auto& info) { return std::string(info.param.key); });

}  // namespace
}  // namespace ijepa
