// Agreement across ranks: rank 0's state sent to everyone at start (weights, optimizer state, the EMA
// target every dist.target_sync_every steps), and checks that ranks agree on config, layouts and weights.
// All are collective: every rank calls them in the same order, each with its own values.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace ijepa::dist {

// Gives every tensor root's values, in place. Tensors are packed per dtype into flat buffers of at most
// max_buffer_bytes, one broadcast per buffer rather than per tensor. All ranks must pass the same number of
// tensors with the same shapes and dtypes in the same order; that is checked first (common::InputError
// naming the ranks that differ). Tensors live on comm.device(). Returns when the values have arrived
// (NCCL: for work queued on the current stream).
void broadcast_tensors(Communicator& comm, const std::vector<torch::Tensor>& tensors, int root = 0,
                       int64_t max_buffer_bytes = int64_t{64} << 20);

// Throws common::InputError when some rank's `value` differs from rank 0's, e.g. "config differs across
// ranks: rank 1 differs from rank 0; first difference at line 12: rank 0 has 'lr: 0.001', rank 1 has
// 'lr: 0.002'". Hashes travel first; the values only on a mismatch.
void verify_same_across_ranks(Communicator& comm, const std::string& what, const std::string& value);

// SHA-256 (hex) of the raw bytes of the tensors, in order; device tensors are copied to the host.
std::string tensors_sha256(const std::vector<torch::Tensor>& tensors);

// Throws DistError naming the ranks whose tensors_sha256 differs from rank 0's: "encoder weights diverged
// across ranks: ranks 1, 3 differ from rank 0".
void verify_tensors_match(Communicator& comm, const std::string& what, const std::vector<torch::Tensor>& tensors);

}  // namespace ijepa::dist
