// Argument checks and names shared by the backends.
#include "dist/collective_args.h"

#include <stdexcept>

namespace ijepa::dist {
namespace {

const char* dtype_name(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat:
      return "fp32";
    case torch::kDouble:
      return "fp64";
    case torch::kBFloat16:
      return "bf16";
    case torch::kHalf:
      return "fp16";
    case torch::kInt:
      return "int32";
    case torch::kLong:
      return "int64";
    case torch::kByte:
      return "uint8";
    default:
      return c10::toString(type);
  }
}

}  // namespace

void check_collective_tensor(const torch::Tensor& tensor, torch::Device device, const char* what) {
  if (!tensor.defined()) throw std::invalid_argument(std::string(what) + ": undefined tensor");
  if (!tensor.is_contiguous()) throw std::invalid_argument(std::string(what) + ": the tensor must be contiguous");
  const bool same_device =
      tensor.device().type() == device.type() && (!device.has_index() || tensor.device().index() == device.index());
  if (!same_device) {
    throw std::invalid_argument(std::string(what) + ": the tensor is on " + tensor.device().str() +
                                ", the communicator works on " + device.str());
  }
}

void check_reducible(const torch::Tensor& tensor, ReduceOp op) {
  const auto type = tensor.scalar_type();
  const bool floating = type == torch::kFloat || type == torch::kDouble || type == torch::kBFloat16;
  const bool integral = type == torch::kInt || type == torch::kLong;
  if (floating || (integral && op == ReduceOp::kSum)) return;
  throw std::invalid_argument(std::string("all_reduce: dtype ") + dtype_name(type) + " is not supported" +
                              (integral ? " for averaging" : "") + " (fp32, fp64, bf16; int32/int64 for sums)");
}

void check_root(int root, int world_size) {
  if (root < 0 || root >= world_size) {
    throw std::invalid_argument("broadcast: root " + std::to_string(root) + " is not a rank of a world of " +
                                std::to_string(world_size));
  }
}

std::string describe_op(const char* what, const torch::Tensor& tensor) {
  return std::string(what) + "(" + dtype_name(tensor.scalar_type()) + ", " + std::to_string(tensor.nbytes()) + " B)";
}

}  // namespace ijepa::dist
