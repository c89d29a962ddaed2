// The MPI backend on 2 ranks: all-reduce and broadcast (fp32, bf16, integers, chunked counts, several in
// flight), barrier, all-gather, progress records and argument checks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/mpi_communicator.h"

namespace ijepa::dist {
namespace {

class MpiCollectives : public ::testing::Test {
 protected:
  MpiCommunicator comm_{60.0};
  int rank_ = comm_.rank();
};

TEST_F(MpiCollectives, TwoRanksOnOneNode) {
  EXPECT_EQ(comm_.backend(), "mpi");
  ASSERT_EQ(comm_.world_size(), 2);
  EXPECT_EQ(comm_.local_rank(), rank_);
  EXPECT_TRUE(comm_.device().is_cpu());
}

TEST_F(MpiCollectives, AllReduceFp32SumAndAverage) {
  const torch::Tensor base = torch::arange(1000, torch::kFloat);
  const torch::Tensor sum = base + 100 * rank_;
  const torch::Tensor mean = base + 100 * rank_;
  auto first = comm_.all_reduce(sum, ReduceOp::kSum);
  auto second = comm_.all_reduce(mean, ReduceOp::kAverage);
  second->wait();
  first->wait();
  EXPECT_TRUE(first->completed());
  EXPECT_TRUE(torch::equal(sum, 2 * base + 100));
  EXPECT_TRUE(torch::equal(mean, base + 50));
}

TEST_F(MpiCollectives, AllReduceBf16AddsInFp32AndRoundsOnce) {
  // Each rank's values are exact in bf16; the sums need fp32 precision before the final rounding.
  torch::manual_seed(3 + rank_);
  const torch::Tensor mine = torch::randn({4096}).to(torch::kBFloat16);
  const auto all = comm_.all_gather_bytes(std::string(static_cast<const char*>(mine.data_ptr()), mine.nbytes()));
  auto rank_values = [&](int r) {
    return torch::from_blob(const_cast<char*>(all[r].data()), {4096}, torch::kBFloat16).to(torch::kFloat);
  };
  const torch::Tensor expected_sum = (rank_values(0) + rank_values(1)).to(torch::kBFloat16);
  const torch::Tensor sum = mine.clone();
  comm_.all_reduce(sum, ReduceOp::kSum)->wait();
  EXPECT_TRUE(torch::equal(sum, expected_sum));
  const torch::Tensor mean = mine.clone();
  comm_.all_reduce(mean, ReduceOp::kAverage)->wait();
  EXPECT_TRUE(torch::equal(mean, expected_sum / 2));
}

TEST_F(MpiCollectives, AllReduceIntegersAndDoubles) {
  const torch::Tensor longs = torch::full({5}, int64_t{1} << 40, torch::kLong) * (rank_ + 1);
  const torch::Tensor ints = torch::full({5}, rank_ + 1, torch::kInt);
  const torch::Tensor doubles = torch::full({5}, 0.25 * (rank_ + 1), torch::kDouble);
  comm_.all_reduce(longs, ReduceOp::kSum)->wait();
  comm_.all_reduce(ints, ReduceOp::kSum)->wait();
  comm_.all_reduce(doubles, ReduceOp::kAverage)->wait();
  EXPECT_EQ(longs[0].item<int64_t>(), 3 * (int64_t{1} << 40));
  EXPECT_EQ(ints[4].item<int>(), 3);
  EXPECT_EQ(doubles[2].item<double>(), 0.375);
}

TEST_F(MpiCollectives, CountsAboveTheLimitAreSplit) {
  MpiTuning tuning;
  tuning.max_count = 7;
  MpiCommunicator small(60.0, tuning);
  const torch::Tensor values = torch::arange(100, torch::kFloat) * (rank_ + 1);
  small.all_reduce(values, ReduceOp::kSum)->wait();
  EXPECT_TRUE(torch::equal(values, torch::arange(100, torch::kFloat) * 3));
  const torch::Tensor bf16 = torch::ones({50}, torch::kBFloat16) * (rank_ + 1);
  small.all_reduce(bf16, ReduceOp::kSum)->wait();
  EXPECT_TRUE(torch::equal(bf16, torch::full({50}, 3, torch::kBFloat16)));
  const torch::Tensor sent = rank_ == 1 ? torch::arange(30, torch::kFloat) : torch::zeros({30});
  small.broadcast(sent, 1)->wait();  // 120 bytes in pieces of 7
  EXPECT_TRUE(torch::equal(sent, torch::arange(30, torch::kFloat)));
}

// The ring (forced on small tensors here) against MPI's own all-reduce: counts that do not split evenly over
// the ranks or the segments, fewer elements than ranks, every dtype, sums and averages, several in flight.
TEST_F(MpiCollectives, RingAllReduceMatchesMpiAllReduce) {
  MpiTuning ring;
  ring.ring_min_bytes = 0;
  ring.ring_segment_bytes = 64;
  MpiCommunicator ringed(60.0, ring);
  for (int64_t count : {1, 2, 15, 16, 17, 1000, 4099}) {
    torch::manual_seed(10 * count + rank_);
    for (const auto dtype : {torch::kFloat, torch::kDouble, torch::kBFloat16, torch::kInt, torch::kLong}) {
      const bool integral = dtype == torch::kInt || dtype == torch::kLong;
      const torch::Tensor mine =
          integral ? torch::randint(-1000, 1000, {count}, dtype) : torch::randn({count}).to(dtype);
      const torch::Tensor expected = mine.clone(), got = mine.clone();
      comm_.all_reduce(expected, ReduceOp::kSum)->wait();
      ringed.all_reduce(got, ReduceOp::kSum)->wait();
      EXPECT_TRUE(torch::equal(got, expected)) << count << " " << dtype;
    }
  }
  const torch::Tensor a = torch::full({300}, 1.0 + rank_), b = torch::arange(301, torch::kFloat) * (rank_ + 1);
  auto first = ringed.all_reduce(a, ReduceOp::kAverage);
  auto second = ringed.all_reduce(b, ReduceOp::kSum);
  second->wait();
  first->wait();
  EXPECT_TRUE(torch::equal(a, torch::full({300}, 1.5)));
  EXPECT_TRUE(torch::equal(b, torch::arange(301, torch::kFloat) * 3));
}

TEST_F(MpiCollectives, ManyCollectivesInFlightCompleteInAnyWaitOrder) {
  std::vector<torch::Tensor> tensors;
  std::vector<WorkHandle> works;
  for (int i = 0; i < 8; ++i) {
    tensors.push_back(torch::full({1 << (8 + i)}, float(i + rank_)));
    works.push_back(comm_.all_reduce(tensors.back(), i % 2 ? ReduceOp::kSum : ReduceOp::kAverage));
  }
  for (int i = 7; i >= 0; --i) works[i]->wait();
  for (int i = 0; i < 8; ++i) {
    const float expected = i % 2 ? float(2 * i + 1) : float(i) + 0.5f;
    EXPECT_TRUE(torch::equal(tensors[i], torch::full_like(tensors[i], expected))) << i;
  }
}

TEST_F(MpiCollectives, BroadcastFromEitherRankAnyDtype) {
  const torch::Tensor f = torch::full({1000}, float(rank_ + 1));
  const torch::Tensor b = torch::full({33}, rank_ + 1.5, torch::kBFloat16);
  const torch::Tensor l = torch::full({3}, int64_t(rank_ + 7), torch::kLong);
  auto w1 = comm_.broadcast(f, 1);
  auto w2 = comm_.broadcast(b, 0);
  auto w3 = comm_.broadcast(l, 1);
  w1->wait();
  w2->wait();
  w3->wait();
  EXPECT_TRUE(torch::equal(f, torch::full({1000}, 2.0f)));
  EXPECT_TRUE(torch::equal(b, torch::full({33}, 1.5, torch::kBFloat16)));
  EXPECT_TRUE(torch::equal(l, torch::full({3}, int64_t(8), torch::kLong)));
}

TEST_F(MpiCollectives, AllGatherOfBytesOfDifferentLengths) {
  const std::string mine = rank_ == 0 ? "" : std::string("rank one\0with a zero", 20);
  const auto all = comm_.all_gather_bytes(mine);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], "");
  EXPECT_EQ(all[1], std::string("rank one\0with a zero", 20));
  EXPECT_EQ(comm_.all_gather_int64(-5 + 10 * rank_), (std::vector<int64_t>{-5, 5}));
  comm_.barrier();
}

TEST_F(MpiCollectives, AllGatherOfInt64NamesARankThatSentOtherBytes) {
  if (rank_ == 1) {
    comm_.all_gather_bytes("four");
    return;
  }
  try {
    comm_.all_gather_int64(5);
    ADD_FAILURE() << "4 bytes were read as an int64";
  } catch (const DistError& e) {
    EXPECT_EQ(std::string(e.what()),
              "all_gather_int64: rank 1 sent 4 bytes, not 8: the ranks issue different collectives");
  }
}

TEST_F(MpiCollectives, AllGatherOfRowsInRoundsOfAFewRows) {
  // Rank 0 has 7 rows, rank 1 has 3 (then none, like a rank past the end of its share); rounds of 48 bytes
  // over 2 ranks carry one 5-float row each, so the gather takes 7 rounds.
  const int64_t count = rank_ == 0 ? 7 : 3;
  const auto mine = torch::arange(count * 5, torch::kFloat).reshape({count, 5}) + 1000 * rank_;
  const auto all = comm_.all_gather_rows(mine, 48);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(torch::equal(all[0], torch::arange(35, torch::kFloat).reshape({7, 5})));
  EXPECT_TRUE(torch::equal(all[1], torch::arange(15, torch::kFloat).reshape({3, 5}) + 1000));
  const auto none = comm_.all_gather_rows(torch::empty({rank_ == 0 ? 0 : 2, 3}, torch::kLong));
  EXPECT_EQ(none[0].sizes(), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(none[1].sizes(), (std::vector<int64_t>{2, 3}));

  const auto uneven = torch::zeros({2, rank_ == 0 ? 4 : 6});
  try {
    comm_.all_gather_rows(uneven);
    ADD_FAILURE() << "rows of different shapes were gathered";
  } catch (const DistError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 0 sends Float rows of [4], rank 1 sends Float rows of [6]"),
              std::string::npos)
        << e.what();
  }
  comm_.barrier();
}

TEST_F(MpiCollectives, PeersReportTheirProgress) {
  comm_.barrier();
  const int64_t entered = comm_.progress().snapshot().called;
  const auto peers = comm_.peer_progress(10.0);
  comm_.barrier();
  // A peer that is done querying may already be in the second barrier.
  ASSERT_EQ(peers.size(), 2u);
  for (const auto& peer : peers) {
    ASSERT_TRUE(peer.has_value());
    EXPECT_GE(peer->called, entered);
    EXPECT_LE(peer->called, entered + 1);
    EXPECT_EQ(peer->last_op(), "barrier");
  }
  EXPECT_EQ(peers[rank_]->called, entered);
  const auto counts = comm_.all_gather_int64(entered);
  EXPECT_EQ(counts[0], counts[1]);
}

TEST_F(MpiCollectives, RejectsArgumentsBeforeAnyRankCommunicates) {
  EXPECT_THROW(comm_.all_reduce(torch::zeros({4}, torch::kLong), ReduceOp::kAverage), std::invalid_argument);
  EXPECT_THROW(comm_.all_reduce(torch::zeros({4, 4}).t(), ReduceOp::kSum), std::invalid_argument);
  EXPECT_THROW(comm_.broadcast(torch::zeros({4}), 2), std::invalid_argument);
  EXPECT_THROW(MpiCommunicator(0.0), std::invalid_argument);
  MpiTuning tiny_segments;
  tiny_segments.ring_segment_bytes = 8;
  EXPECT_THROW(MpiCommunicator(60.0, tiny_segments), std::invalid_argument);
}

}  // namespace
}  // namespace ijepa::dist
