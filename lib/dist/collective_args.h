// Argument checks and names shared by the backends (internal to lib/dist).
#pragma once

#include <torch/types.h>

#include <string>

#include "dist/communicator.h"

namespace ijepa::dist {

// Throws std::invalid_argument unless `tensor` is defined, contiguous and on `device`.
void check_collective_tensor(const torch::Tensor& tensor, torch::Device device, const char* what);

// Throws std::invalid_argument unless all_reduce supports the dtype with `op`.
void check_reducible(const torch::Tensor& tensor, ReduceOp op);

// Throws std::invalid_argument unless 0 <= root < world_size.
void check_root(int root, int world_size);

// "all_reduce(fp32, 4096 B)": the name of a collective in progress records and errors.
std::string describe_op(const char* what, const torch::Tensor& tensor);

}  // namespace ijepa::dist
