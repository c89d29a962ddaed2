// Consistency helpers on one process: how they pack broadcasts, what they send, how they hash. The agreement checks
// themselves run on 2 ranks (mpi_synchronizer_test.cpp).
#include "dist/consistency.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/sha256.h"
#include "dist_test_util.h"

namespace ijepa::dist {
namespace {

TEST(Consistency, BroadcastPacksTensorsPerDtypeIntoBoundedBuffers) {
  testing::RecordingCommunicator comm;
  const std::vector<torch::Tensor> tensors = {torch::zeros({5}), torch::zeros({2}), torch::zeros({3}, torch::kLong),
                                              torch::zeros({10})};
  broadcast_tensors(comm, tensors, 0, /*max_buffer_bytes=*/32);
  // fp32 20 + 8 bytes together; the int64 alone; the last fp32 alone, over the cap by itself.
  EXPECT_EQ(comm.broadcast_bytes, (std::vector<int64_t>{28, 24, 40}));
}

TEST(Consistency, AgreementChecksSendHashesNotValues) {
  testing::RecordingCommunicator comm;
  verify_same_across_ranks(comm, "config", std::string(10000, 'x'));
  verify_tensors_match(comm, "weights", {torch::ones({1000})});
  EXPECT_EQ(comm.gathered_bytes, (std::vector<int64_t>{64, 64}));  // SHA-256 in hex
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
