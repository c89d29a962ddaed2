// The MPI backend: collectives as engine tasks.
#include "dist/mpi_communicator.h"

#include <c10/util/BFloat16.h>

#include <utility>

#include "common/log.h"
#include "dist/collective_args.h"
#include "dist/mpi_engine.h"
#include "dist/mpi_ring.h"

namespace ijepa::dist {
namespace {

// MPI_Op for bf16 sums (MPI_UINT16_T carries the bits): fp32 adds, rounded to nearest even.
void bf16_sum(void* in, void* inout, int* length, MPI_Datatype* /*type*/) {
  const auto* a = static_cast<const c10::BFloat16*>(in);
  auto* b = static_cast<c10::BFloat16*>(inout);
  for (int i = 0; i < *length; ++i) b[i] = c10::BFloat16(static_cast<float>(a[i]) + static_cast<float>(b[i]));
}

MPI_Datatype mpi_type(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat:
      return MPI_FLOAT;
    case torch::kDouble:
      return MPI_DOUBLE;
    case torch::kBFloat16:
      return MPI_UINT16_T;
    case torch::kInt:
      return MPI_INT32_T;
    case torch::kLong:
      return MPI_INT64_T;
    default:
      return MPI_DATATYPE_NULL;  // check_reducible rejected it already
  }
}

// [offset, count] pieces of at most max_count elements covering `total`.
std::vector<std::pair<int64_t, int>> split_count(int64_t total, int max_count) {
  std::vector<std::pair<int64_t, int>> pieces;
  for (int64_t offset = 0; offset < total; offset += max_count) {
    pieces.emplace_back(offset, static_cast<int>(std::min<int64_t>(max_count, total - offset)));
  }
  return pieces;
}

// MPI_Iallreduce (in place, `sum`) of the tensor, in calls of at most max_count elements.
MpiPhase iallreduce_phase(const torch::Tensor& tensor, MPI_Op sum, MPI_Comm comm, int max_count) {
  const MPI_Datatype type = mpi_type(tensor.scalar_type());
  return
      [tensor, type, sum, comm, pieces = split_count(tensor.numel(), max_count)](std::vector<MPI_Request>& requests) {
        auto* base = static_cast<char*>(tensor.data_ptr());
        for (const auto& [offset, count] : pieces) {
          MPI_Request& request = requests.emplace_back(MPI_REQUEST_NULL);
          IJEPA_MPI_CHECK(
              MPI_Iallreduce(MPI_IN_PLACE, base + offset * tensor.element_size(), count, type, sum, comm, &request));
        }
      };
}

int local_rank_of(MPI_Comm comm) {
  MPI_Comm node = MPI_COMM_NULL;
  int rank = 0;
  IJEPA_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  IJEPA_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
  int local_rank = 0;
  IJEPA_MPI_CHECK(MPI_Comm_rank(node, &local_rank));
  IJEPA_MPI_CHECK(MPI_Comm_free(&node));
  return local_rank;
}

// The arguments are checked before MPI starts: its start is bounded by the timeout too.
double checked_timeout(double timeout_s, const MpiTuning& tuning) {
  if (!(timeout_s > 0)) throw std::invalid_argument("MpiCommunicator: the timeout must be positive");
  if (tuning.max_count < 1) throw std::invalid_argument("MpiCommunicator: max_count must be positive");
  if (tuning.ring_segment_bytes < 16) throw std::invalid_argument("MpiCommunicator: ring segments under 16 bytes");
  return timeout_s;
}

std::string setup_report(double timeout_s) {
  int rank = 0, world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  return log::str("dist: creating an MPI communicator did not finish within dist.timeout_s = ", timeout_s,
                  " s on rank ", rank, " of ", world,
                  ": it waits for every rank, and at least one has not reached it (every rank must construct its "
                  "communicators in the same order); aborting the job");
}

}  // namespace

MpiCommunicator::MpiCommunicator(double timeout_s, MpiTuning tuning)
    : runtime_(MpiRuntime::acquire(checked_timeout(timeout_s, tuning))), timeout_s_(timeout_s), tuning_(tuning) {
  ring_scratch_ = std::make_shared<RingScratch>(tuning.ring_segment_bytes);
  {
    // MPI_Comm_dup and MPI_Comm_split_type return once every rank has called them, and nothing else bounds them.
    const MpiWatchdog watchdog(timeout_s_, setup_report(timeout_s_), /*mpi_started=*/true);
    IJEPA_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    IJEPA_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &status_comm_));
    for (MPI_Comm comm : {comm_, status_comm_}) IJEPA_MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
    local_rank_ = local_rank_of(comm_);
  }
  IJEPA_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  IJEPA_MPI_CHECK(MPI_Comm_size(comm_, &world_));
  IJEPA_MPI_CHECK(MPI_Op_create(&bf16_sum, 1, &bf16_sum_));
  engine_ = std::make_shared<MpiEngine>(comm_, status_comm_, timeout_s_, runtime_);
}

MpiCommunicator::~MpiCommunicator() {
  engine_->stop();
  if (runtime_->failed()) return;  // handles with collectives pending on them cannot be freed
  MPI_Op_free(&bf16_sum_);
  MPI_Comm_free(&status_comm_);
  MPI_Comm_free(&comm_);
}

WorkHandle MpiCommunicator::all_reduce(const torch::Tensor& tensor, ReduceOp op) {
  check_collective_tensor(tensor, torch::kCPU, "all_reduce");
  check_reducible(tensor, op);
  const bool ring = world_ > 1 && static_cast<int64_t>(tensor.nbytes()) >= tuning_.ring_min_bytes;
  const MPI_Op sum = tensor.scalar_type() == torch::kBFloat16 ? bf16_sum_ : MPI_SUM;
  std::vector<MpiPhase> phases =
      ring ? ring_all_reduce_phases(tensor, comm_, rank_, world_, tuning_.ring_segment_bytes, ring_scratch_)
           : std::vector<MpiPhase>{iallreduce_phase(tensor, sum, comm_, tuning_.max_count)};
  std::function<void()> finish;
  // A multiply: a division by a scalar costs several times more on the CPU (and is the same for 2^k ranks).
  if (op == ReduceOp::kAverage && world_ > 1) finish = [tensor, scale = 1.0 / world_] { tensor.mul_(scale); };
  return engine_->submit(describe_op("all_reduce", tensor), std::move(phases), std::move(finish));
}

WorkHandle MpiCommunicator::broadcast(const torch::Tensor& tensor, int root) {
  check_collective_tensor(tensor, torch::kCPU, "broadcast");
  check_root(root, world_);
  const MPI_Comm comm = comm_;
  auto pieces = split_count(tensor.nbytes(), tuning_.max_count);
  MpiPhase post = [tensor, root, comm, pieces](std::vector<MPI_Request>& requests) {
    auto* base = static_cast<char*>(tensor.data_ptr());
    for (const auto& [offset, count] : pieces) {
      MPI_Request& request = requests.emplace_back(MPI_REQUEST_NULL);
      IJEPA_MPI_CHECK(MPI_Ibcast(base + offset, count, MPI_BYTE, root, comm, &request));
    }
  };
  return engine_->submit(describe_op("broadcast", tensor), {std::move(post)}, nullptr);
}

void MpiCommunicator::barrier() {
  const MPI_Comm comm = comm_;
  MpiPhase post = [comm](std::vector<MPI_Request>& requests) {
    IJEPA_MPI_CHECK(MPI_Ibarrier(comm, &requests.emplace_back(MPI_REQUEST_NULL)));
  };
  engine_->submit("barrier", {std::move(post)}, nullptr)->wait();
}

std::vector<std::string> MpiCommunicator::all_gather_bytes(const std::string& bytes) {
  // Two phases: everyone's length, then everyone's bytes.
  struct Gather {
    int64_t length = 0;
    std::string mine;
    std::vector<int64_t> lengths;
    std::vector<int> counts, offsets;
    std::string all;
  };
  auto gather = std::make_shared<Gather>();
  gather->mine = bytes;
  gather->length = static_cast<int64_t>(bytes.size());
  gather->lengths.resize(world_);
  const MPI_Comm comm = comm_;
  MpiPhase lengths = [gather, comm](std::vector<MPI_Request>& requests) {
    IJEPA_MPI_CHECK(MPI_Iallgather(&gather->length, 1, MPI_INT64_T, gather->lengths.data(), 1, MPI_INT64_T, comm,
                                   &requests.emplace_back(MPI_REQUEST_NULL)));
  };
  MpiPhase data = [gather, comm](std::vector<MPI_Request>& requests) {
    int64_t total = 0;
    for (int64_t length : gather->lengths) {
      gather->offsets.push_back(static_cast<int>(total));
      gather->counts.push_back(static_cast<int>(length));
      total += length;
    }
    if (total > INT_MAX) throw DistError("all_gather_bytes: " + std::to_string(total) + " bytes over all ranks");
    gather->all.resize(static_cast<size_t>(total));
    IJEPA_MPI_CHECK(MPI_Iallgatherv(gather->mine.data(), static_cast<int>(gather->length), MPI_BYTE, gather->all.data(),
                                    gather->counts.data(), gather->offsets.data(), MPI_BYTE, comm,
                                    &requests.emplace_back(MPI_REQUEST_NULL)));
  };
  engine_->submit("all_gather_bytes", {std::move(lengths), std::move(data)}, nullptr)->wait();
  std::vector<std::string> result;
  for (int r = 0; r < world_; ++r) result.push_back(gather->all.substr(gather->offsets[r], gather->counts[r]));
  return result;
}

void MpiCommunicator::mark_failed() { runtime_->mark_failed(); }

void MpiCommunicator::abort(const std::string& reason, int exit_code) {
  log::error(log::str("dist: rank ", rank_, " aborting the job: ", reason));
  runtime_->mark_failed();
  MPI_Abort(MPI_COMM_WORLD, exit_code);
}

ProgressTracker& MpiCommunicator::progress() { return engine_->progress(); }

std::vector<std::optional<ProgressRecord>> MpiCommunicator::peer_progress(double wait_s) {
  return engine_->query_peers(wait_s);
}

}  // namespace ijepa::dist
