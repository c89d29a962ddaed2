// The communication interface of data-parallel training, and the factory that picks a backend.
//
// Backends: SingleProcessCommunicator (world of one, collectives are no-ops), MpiCommunicator (CPU tensors,
// non-blocking MPI collectives driven by a progress thread) and NcclCommunicator (CUDA tensors on its own
// stream, with an MPI or single-process control plane). Every collective is entered by every rank in the
// same order; each takes a sequence number in progress(), which is how a stalled rank names the ranks it is
// waiting for. Nothing here knows about models: callers pass tensors.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "dist/errors.h"
#include "dist/progress.h"

namespace ijepa::dist {

enum class ReduceOp { kSum, kAverage };

// A collective in flight. Valid after its communicator is gone (then wait() reports the loss).
class Work {
 public:
  virtual ~Work() = default;
  // Makes the result usable: the CPU backends block until it is complete; NCCL makes the current CUDA stream
  // wait for it, so the host never blocks. Throws CollectiveTimeout when the collective has not completed
  // within the communicator's timeout (counted from the call that started it), naming the ranks that have
  // not arrived, and DistError when it failed.
  virtual void wait() = 0;
  // True once the collective has completed successfully; never blocks. False for one that failed or timed out
  // (wait() says why) and, for NCCL, for every collective once the communicator has failed: an aborted
  // collective's completion event fires too.
  virtual bool completed() = 0;
};
using WorkHandle = std::shared_ptr<Work>;

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual std::string backend() const = 0;  // "single", "mpi" or "nccl"
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes on this node; selects the GPU
  // Where the tensors of all_reduce and broadcast must live: CPU, or the CUDA device of local_rank().
  virtual torch::Device device() const = 0;
  virtual double timeout_s() const = 0;

  // In place over all ranks. tensor: contiguous, on device(); float32, float64 or bfloat16 (kSum also
  // int32 and int64). Non-blocking: the tensor must not be touched until the handle's wait() returns.
  virtual WorkHandle all_reduce(const torch::Tensor& tensor, ReduceOp op) = 0;
  // In place: every rank receives root's values. Any dtype; contiguous, on device(). Non-blocking.
  virtual WorkHandle broadcast(const torch::Tensor& tensor, int root) = 0;
  // Blocks until every rank has entered it, or throws CollectiveTimeout.
  virtual void barrier() = 0;
  // Blocks until the collectives this rank started have completed, then throws (CollectiveTimeout, DistError)
  // if any failed. Before a checkpoint: NCCL's wait() never blocks the host, so a collective aborted by the
  // watchdog would otherwise go unseen until the next call. The CPU backends finish a collective in wait().
  virtual void synchronize() {}
  // Blocking. Element r of the result is rank r's bytes (any length, may differ between ranks). For small
  // control data: hashes, layout descriptions, ids.
  virtual std::vector<std::string> all_gather_bytes(const std::string& bytes) = 0;
  std::vector<int64_t> all_gather_int64(int64_t value);
  // Blocking. Element r is rank r's `rows`: a CPU tensor [n_r, ...] whose row count may differ between
  // ranks but whose dtype and row shape may not (DistError naming the ranks that differ). Sent in rounds
  // of at most max_round_bytes over all ranks, so the whole may exceed one MPI message (an int count of
  // bytes: 2 GiB) and the buffers stay small. For bulk data such as evaluation features.
  std::vector<torch::Tensor> all_gather_rows(const torch::Tensor& rows, int64_t max_round_bytes = int64_t{256} << 20);

  // Gives up without waiting for peers and ends every rank of the job, so that none is left waiting:
  // the reason goes to the log, NCCL aborts its communicator, MPI calls MPI_Abort with exit_code (which the
  // launcher exits with; MPI_Abort does not return). The single-process backend only marks itself unusable.
  // Call after an unrecoverable DistError, or an error only this rank saw while the others go on.
  virtual void abort(const std::string& reason, int exit_code) = 0;
  // Records that a collective of this communicator's stack failed, so that the process's shutdown does not wait
  // for peers that may be gone or stuck (MPI skips MPI_Finalize). NCCL calls it on its control after a failure.
  virtual void mark_failed() {}

  // This rank's record of collectives entered and completed.
  virtual ProgressTracker& progress() = 0;
  // Asks every rank for its progress record, waiting at most wait_s for answers; element r is nullopt when
  // rank r did not answer. Used for stall reports; collective-free, so it works while peers are stuck.
  virtual std::vector<std::optional<ProgressRecord>> peer_progress(double wait_s) = 0;
};

// Chooses and starts a backend from dist.backend:
//   auto:   nccl for a CUDA device; mpi when launched by an MPI launcher with more than one rank; else single
//   single: one process (an error when the launcher started several)
//   mpi:    CPU tensors over MPI (needs an MPI build)
//   nccl:   CUDA tensors over NCCL (needs a CUDA device and an NCCL build; MPI carries the setup)
// device: kCPU, or kCUDA with or without an index (without one, local_rank picks the GPU). Rank, world size
// and local rank come from the MPI runtime (mpirun, srun --mpi=pmix). Throws common::InputError for a
// backend that does not fit the device, the build or the launch.
std::unique_ptr<Communicator> make_communicator(const common::DistConfig& config, torch::Device device);

}  // namespace ijepa::dist
