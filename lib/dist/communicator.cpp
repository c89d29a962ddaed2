// Communicator helpers and the backend factory.
#include "dist/communicator.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

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
  const std::vector<std::string> items = all_gather_bytes(bytes);
  std::vector<int64_t> values(items.size());
  for (size_t r = 0; r < items.size(); ++r) {
    if (items[r].size() != sizeof(value)) {
      throw DistError("all_gather_int64: rank " + std::to_string(r) + " sent " + std::to_string(items[r].size()) +
                      " bytes, not " + std::to_string(sizeof(value)) + ": the ranks issue different collectives");
    }
    std::memcpy(&values[r], items[r].data(), sizeof(value));
  }
  return values;
}

namespace {

std::string row_description(const torch::Tensor& rows) {
  return c10::str(rows.scalar_type(), " rows of ", rows.sizes().slice(1));
}

// DistError when the ranks' rows differ in dtype or shape: they would be misread, not only misplaced.
void check_same_rows(Communicator& comm, const torch::Tensor& rows) {
  const auto descriptions = comm.all_gather_bytes(row_description(rows));
  for (size_t r = 1; r < descriptions.size(); ++r) {
    if (descriptions[r] != descriptions[0]) {
      throw DistError("all_gather_rows: rank 0 sends " + descriptions[0] + ", rank " + std::to_string(r) + " sends " +
                      descriptions[r]);
    }
  }
}

}  // namespace

std::vector<torch::Tensor> Communicator::all_gather_rows(const torch::Tensor& rows, int64_t max_round_bytes) {
  if (rows.dim() < 1 || !rows.device().is_cpu() || max_round_bytes <= 0) {
    throw std::invalid_argument("all_gather_rows: rows must be a CPU tensor of at least one dimension");
  }
  check_same_rows(*this, rows);
  const auto local = rows.contiguous();
  const auto counts = all_gather_int64(local.size(0));
  // From the row shape, not from this rank's data: every rank must count the same rounds, even one with no rows.
  const int64_t row_bytes = std::max<int64_t>(1, local.element_size() * c10::multiply_integers(local.sizes().slice(1)));
  const int64_t round_rows = std::max<int64_t>(1, max_round_bytes / (world_size() * row_bytes));
  const int64_t most_rows = *std::max_element(counts.begin(), counts.end());

  std::vector<torch::Tensor> gathered;
  for (const int64_t count : counts) {
    auto shape = local.sizes().vec();
    shape[0] = count;
    gathered.push_back(torch::empty(shape, local.options()));
  }
  // Round k carries rows [k * round_rows, (k + 1) * round_rows) of every rank; a rank past its end sends none.
  for (int64_t begin = 0; begin < most_rows; begin += round_rows) {
    const auto mine = local.slice(0, std::min(begin, local.size(0)), std::min(begin + round_rows, local.size(0)));
    const auto received =
        all_gather_bytes(std::string(static_cast<const char*>(mine.data_ptr()), static_cast<size_t>(mine.nbytes())));
    for (size_t r = 0; r < received.size(); ++r) {
      const auto into = gathered[r].slice(0, std::min(begin, counts[r]), std::min(begin + round_rows, counts[r]));
      if (static_cast<int64_t>(received[r].size()) != static_cast<int64_t>(into.nbytes())) {
        throw DistError("all_gather_rows: rank " + std::to_string(r) + " sent " + std::to_string(received[r].size()) +
                        " bytes in a round that needs " + std::to_string(into.nbytes()));
      }
      if (!received[r].empty()) std::memcpy(into.data_ptr(), received[r].data(), received[r].size());
    }
  }
  return gathered;
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
  if (launch.srun_tasks_without_mpi > 0) {
    throw InputError("srun started " + std::to_string(launch.srun_tasks_without_mpi) +
                     " tasks without an MPI plugin (no PMIx or PMI variables), so each would train alone: launch "
                     "with srun --mpi=pmix (see deploy/slurm)");
  }
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
    return std::make_unique<NcclCommunicator>(make_control(launch, config.timeout_s),
                                              device.has_index() ? device.index() : kGpuOfLocalRank, config.timeout_s);
#else
    throw InputError("dist.backend=nccl, but this build has no NCCL (LibTorch without CUDA, or NCCL not found)");
#endif
  }
  throw InputError("dist.backend: unknown backend '" + config.backend + "' (auto, single, mpi or nccl)");
}

}  // namespace ijepa::dist
