// A ring all-reduce of our own over MPI point-to-point messages, as phases of one engine task (internal to
// lib/dist), for large tensors.
//
// Why: MPI_Iallreduce (Open MPI's libnbc) reduces whole halves of the buffer at once and allocates a temporary
// buffer per call; for buffers beyond the caches that moved memory at 0.6-0.75x of the blocking MPI_Allreduce
// on 2 ranks (BENCHMARKS.md). Here each rank's chunk is received in segments that stay in cache while they are
// added, into one scratch buffer reused by every call.
//
// The classic ring over n ranks: n-1 reduce-scatter steps (rank r sends chunk r-s to rank r+1, receives chunk
// r-s-1 from rank r-1 and adds it to its own) leave rank r with the sum of chunk r+1; n-1 all-gather steps
// pass the summed chunks on. Each reduce-scatter segment is one phase (send and receive, then the addition at
// the start of the next phase); each all-gather step one phase.
#pragma once

#include <mpi.h>
#include <torch/types.h>

#include <memory>
#include <vector>

#include "dist/mpi_engine.h"

namespace ijepa::dist {

// Received segments land here before they are added. One per communicator: the engine posts every phase of a
// task before the first phase of the next, and a ring's last use of the scratch (the addition of its last
// segment) comes before its all-gather phases, so two rings never hold it at once.
struct RingScratch {
  explicit RingScratch(int64_t segment_bytes) : bytes(static_cast<size_t>(segment_bytes)) {}
  std::vector<char> bytes;  // one segment of any dtype
};

// The phases of a sum all-reduce of `tensor` (contiguous CPU; float, double, bf16, int32 or int64) over the
// ranks of `comm`, in segments of at most segment_bytes. Every rank must call it with the same count, dtype and
// segment size, in the same task order. `scratch` holds at least segment_bytes.
std::vector<MpiPhase> ring_all_reduce_phases(const torch::Tensor& tensor, MPI_Comm comm, int rank, int world,
                                             int64_t segment_bytes, std::shared_ptr<RingScratch> scratch);

}  // namespace ijepa::dist
