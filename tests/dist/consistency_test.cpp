// Consistency helpers on one process: they must pass through and hash what they are given.
#include "dist/consistency.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/sha256.h"
#include "dist/single_process_communicator.h"

namespace ijepa::dist {
namespace {

TEST(Consistency, BroadcastFromTheOnlyRankKeepsValues) {
  SingleProcessCommunicator comm;
  const torch::Tensor a = torch::arange(5, torch::kFloat);
  const torch::Tensor b = torch::arange(3, torch::kLong);
  broadcast_tensors(comm, {a, b});
  EXPECT_TRUE(torch::equal(a, torch::arange(5, torch::kFloat)));
  EXPECT_TRUE(torch::equal(b, torch::arange(3, torch::kLong)));
}

TEST(Consistency, AgreementChecksPassForOneRank) {
  SingleProcessCommunicator comm;
  EXPECT_NO_THROW(verify_same_across_ranks(comm, "config", "lr: 0.1\n"));
  EXPECT_NO_THROW(verify_tensors_match(comm, "weights", {torch::ones({3})}));
}

TEST(Consistency, TensorHashIsTheSha256OfTheRawBytes) {
  const torch::Tensor a = torch::tensor({1.0f, 2.0f});
  const torch::Tensor b = torch::tensor({3}, torch::kLong);
  common::Sha256 expected;
  expected.update(a.data_ptr(), a.nbytes());
  expected.update(b.data_ptr(), b.nbytes());
  EXPECT_EQ(tensors_sha256({a, b}), expected.hex_digest());
  // Layout does not matter, values do.
  EXPECT_EQ(tensors_sha256({torch::arange(6, torch::kFloat).view({2, 3}).t()}),
            tensors_sha256({torch::tensor({0.0f, 3.0f, 1.0f, 4.0f, 2.0f, 5.0f})}));
  EXPECT_NE(tensors_sha256({a}), tensors_sha256({a + 1}));
}

}  // namespace
}  // namespace ijepa::dist
