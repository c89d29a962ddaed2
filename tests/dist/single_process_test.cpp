// The single-process backend: collectives leave tensors as they are, arguments are checked like elsewhere.
#include "dist/single_process_communicator.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace ijepa::dist {
namespace {

TEST(SingleProcess, IsAWorldOfOne) {
  SingleProcessCommunicator comm;
  EXPECT_EQ(comm.backend(), "single");
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.world_size(), 1);
  EXPECT_EQ(comm.local_rank(), 0);
  EXPECT_TRUE(comm.device().is_cpu());
}

TEST(SingleProcess, CollectivesLeaveValuesAndComplete) {
  SingleProcessCommunicator comm;
  const torch::Tensor t = torch::arange(6, torch::kFloat);
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage}) {
    auto work = comm.all_reduce(t, op);
    EXPECT_TRUE(work->completed());
    work->wait();
  }
  comm.broadcast(t, 0)->wait();
  comm.all_reduce(t.to(torch::kBFloat16), ReduceOp::kAverage)->wait();
  comm.all_reduce(torch::ones({3}, torch::kLong), ReduceOp::kSum)->wait();
  EXPECT_TRUE(torch::equal(t, torch::arange(6, torch::kFloat)));
  comm.barrier();
  EXPECT_EQ(comm.all_gather_bytes("abc"), std::vector<std::string>{"abc"});
  EXPECT_EQ(comm.all_gather_int64(-7), std::vector<int64_t>{-7});
  const auto rows = torch::arange(12, torch::kFloat).reshape({4, 3});
  const auto gathered = comm.all_gather_rows(rows, 8);  // four rounds of one row
  ASSERT_EQ(gathered.size(), 1u);
  EXPECT_TRUE(torch::equal(gathered[0], rows));
}

TEST(SingleProcess, RecordsProgress) {
  SingleProcessCommunicator comm;
  comm.barrier();
  comm.all_reduce(torch::zeros({4}), ReduceOp::kSum)->wait();
  const auto peers = comm.peer_progress(1.0);
  ASSERT_EQ(peers.size(), 1u);
  ASSERT_TRUE(peers[0].has_value());
  EXPECT_EQ(peers[0]->called, 2);
  EXPECT_EQ(peers[0]->completed, 2);
  EXPECT_EQ(peers[0]->last_op(), "all_reduce(fp32, 16 B)");
}

TEST(SingleProcess, RejectsTensorsNoBackendTakes) {
  SingleProcessCommunicator comm;
  EXPECT_THROW(comm.all_reduce(torch::Tensor(), ReduceOp::kSum), std::invalid_argument);
  EXPECT_THROW(comm.all_reduce(torch::zeros({4, 4}).t(), ReduceOp::kSum), std::invalid_argument);
  EXPECT_THROW(comm.all_reduce(torch::zeros({4}, torch::kLong), ReduceOp::kAverage), std::invalid_argument);
  EXPECT_THROW(comm.all_reduce(torch::zeros({4}, torch::kHalf), ReduceOp::kSum), std::invalid_argument);
  EXPECT_THROW(comm.broadcast(torch::zeros({4}), 1), std::invalid_argument);
}

TEST(SingleProcess, AbortMakesLaterCallsFail) {
  SingleProcessCommunicator comm;
  comm.abort("test", 1);
  EXPECT_THROW(comm.barrier(), DistError);
  EXPECT_THROW(comm.all_reduce(torch::zeros({1}), ReduceOp::kSum), DistError);
}

}  // namespace
}  // namespace ijepa::dist
