// Communicator helpers and the backend factory.
#include "dist/communicator.h"

#include <cstring>

#include "common/errors.h"
#include "dist/launch.h"
#include "dist/single_process_communicator.h"

#ifdef IJEPA_DIST_HAVE_MPI
#include "dist/mpi_communicator.h"
#endif
#ifdef IJEPA_DIST_HAVE_NCCL
#include "dist/nccl_communicator.h"
#endif

namespace ijepa::dist {

using common::InputError;

std::vector<int64_t> Communicator::all_gather_int64(int64_t value) {
  std::string bytes(sizeof(value), '\0');
  std::memcpy(bytes.data(), &value, sizeof(value));
  std::vector<int64_t> values;
  for (const std::string& item : all_gather_bytes(bytes)) {
    int64_t v = 0;
    if (item.size() != sizeof(v))
      throw DistError("all_gather_int64: a rank sent " + std::to_string(item.size()) + " bytes");
    std::memcpy(&v, item.data(), sizeof(v));
    values.push_back(v);
  }
  return values;
}

namespace {

std::string resolve_backend(const std::string& backend, torch::Device device, const LaunchEnvironment& launch) {
  if (backend != "auto") return backend;
  if (device.is_cuda()) return "nccl";
  return launch.under_mpi && launch.world_size > 1 ? "mpi" : "single";
}

#ifdef IJEPA_DIST_HAVE_NCCL
// NCCL's setup and control traffic go over MPI when the launcher started MPI, else the job is one process.
std::unique_ptr<Communicator> make_control(const LaunchEnvironment& launch, double timeout_s) {
#ifdef IJEPA_DIST_HAVE_MPI
  if (launch.under_mpi) return std::make_unique<MpiCommunicator>(timeout_s);
#endif
  if (launch.world_size > 1) {
    throw InputError("dist.backend=nccl with " + std::to_string(launch.world_size) +
                     " ranks needs MPI to share the NCCL id, but this build has no MPI (IJEPA_WITH_MPI=OFF)");
  }
  return std::make_unique<SingleProcessCommunicator>(torch::kCPU, timeout_s);
}
#endif

}  // namespace

std::unique_ptr<Communicator> make_communicator(const common::DistConfig& config, torch::Device device) {
  if (!(config.timeout_s > 0)) {
    throw InputError("dist.timeout_s: must be positive, got " + std::to_string(config.timeout_s));
  }
  const LaunchEnvironment launch = detect_launch();
  const std::string backend = resolve_backend(config.backend, device, launch);
  if (backend == "single") {
    if (launch.world_size > 1) {
      throw InputError("dist.backend=single, but the launcher started " + std::to_string(launch.world_size) +
                       " ranks; use mpi (CPU) or nccl (GPU)");
    }
    return std::make_unique<SingleProcessCommunicator>(device, config.timeout_s);
  }
  if (backend == "mpi") {
    if (!device.is_cpu()) throw InputError("dist.backend=mpi reduces CPU tensors, but the device is " + device.str());
#ifdef IJEPA_DIST_HAVE_MPI
    return std::make_unique<MpiCommunicator>(config.timeout_s);
#else
    throw InputError("dist.backend=mpi, but this build has no MPI (configure with IJEPA_WITH_MPI=ON)");
#endif
  }
  if (backend == "nccl") {
    if (!device.is_cuda()) throw InputError("dist.backend=nccl needs a CUDA device, but the device is " + device.str());
#ifdef IJEPA_DIST_HAVE_NCCL
    auto control = make_control(launch, config.timeout_s);
    const int index = device.has_index() ? device.index() : gpu_for_local_rank(control->local_rank());
    return std::make_unique<NcclCommunicator>(std::move(control), index, config.timeout_s);
#else
    throw InputError("dist.backend=nccl, but this build has no NCCL (LibTorch without CUDA, or NCCL not found)");
#endif
  }
  throw InputError("dist.backend: unknown backend '" + config.backend + "' (auto, single, mpi or nccl)");
}

}  // namespace ijepa::dist
