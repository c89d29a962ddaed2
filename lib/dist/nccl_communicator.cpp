// The NCCL backend: setup, stream-ordered collectives, and the watchdog.
#include "dist/nccl_communicator.h"

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "dist/collective_args.h"
#include "dist/gpu_check.h"

namespace ijepa::dist {

void cuda_check(cudaError_t code, const char* call, const char* file, int line) {
  if (code == cudaSuccess) return;
  throw DistError("CUDA error in " + std::string(call) + " (" + file + ":" + std::to_string(line) +
                  "): " + cudaGetErrorString(code));
}

void nccl_check(ncclResult_t code, const char* call, const char* file, int line) {
  if (code == ncclSuccess || code == ncclInProgress) return;
  throw DistError("NCCL error in " + std::string(call) + " (" + file + ":" + std::to_string(line) +
                  "): " + ncclGetErrorString(code) + " (" + ncclGetLastError(nullptr) + ")");
}

int gpu_for_local_rank(int local_rank, int visible) {
  if (visible < 1) throw common::InputError("local rank " + std::to_string(local_rank) + ": no GPU is visible");
  return local_rank % visible;
}

int gpu_for_local_rank(int local_rank) {
  int visible = 0;
  if (cudaGetDeviceCount(&visible) != cudaSuccess) visible = 0;
  const int index = gpu_for_local_rank(local_rank, visible);
  const char* mask = std::getenv("CUDA_VISIBLE_DEVICES");
  log::info(log::str("dist: local rank ", local_rank, " uses GPU ", index, " of ", visible, " visible",
                     mask ? " (CUDA_VISIBLE_DEVICES=" + std::string(mask) + ")" : std::string()));
  return index;
}

// A CUDA event without timing (outside the anonymous namespace: State, which has external linkage, holds
// them), destroyed with the object (destruction of a pending event is deferred by CUDA).
class CudaEvent {
 public:
  CudaEvent() { IJEPA_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming)); }
  ~CudaEvent() { cudaEventDestroy(event_); }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

namespace {

using common::Clock;
using common::to_duration;
constexpr auto kWatchInterval = std::chrono::milliseconds(100);
constexpr auto kReadyPoll = std::chrono::microseconds(100);

ncclDataType_t nccl_type(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat:
      return ncclFloat32;
    case torch::kDouble:
      return ncclFloat64;
    case torch::kBFloat16:
      return ncclBfloat16;
    case torch::kInt:
      return ncclInt32;
    default:
      return ncclInt64;  // check_reducible admits nothing else
  }
}

}  // namespace

struct NcclCommunicator::State : std::enable_shared_from_this<NcclCommunicator::State> {
  struct Pending {
    std::shared_ptr<CudaEvent> done;
    Clock::time_point deadline;
    std::string op;
    int64_t seq = 0;
  };
  // What the watchdog found wrong: a collective past its deadline, or an asynchronous NCCL error.
  struct Fault {
    std::string headline;
    StallSubject subject;
    bool timeout = false;
  };

  int device = 0;
  double timeout_s = 0;
  Communicator* control = nullptr;  // outlives the watchdog
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;

  std::mutex mutex;  // serialises NCCL calls; guards the fields below
  std::vector<Pending> pending;
  std::string failure;
  bool failure_is_timeout = false;
  bool stopping = false;
  std::condition_variable wake;
  std::thread watchdog;

  void throw_if_failed_locked() const {
    if (failure.empty()) return;
    if (failure_is_timeout) throw CollectiveTimeout(failure);
    throw DistError(failure);
  }

  // Records the first failure and aborts the NCCL communicator, which ends kernels waiting on dead peers. The
  // control is marked failed too: MPI_Finalize waits for every rank, and a peer may be stuck for ever.
  void fail_locked(const std::string& why, bool timeout) {
    if (failure.empty()) {
      failure = why;
      failure_is_timeout = timeout;
    }
    if (comm != nullptr) {
      ncclCommAbort(comm);
      comm = nullptr;
    }
    control->mark_failed();
  }

  // Polls a non-blocking communicator until its last call has finished: false when the deadline passes first.
  // Fails it and throws on an NCCL error.
  bool wait_ready_locked(const std::string& what, Clock::time_point deadline) {
    while (true) {
      ncclResult_t state = ncclSuccess;
      IJEPA_NCCL_CHECK(ncclCommGetAsyncError(comm, &state));
      if (state == ncclSuccess) return true;
      if (state != ncclInProgress) {
        fail_locked(what + ": NCCL error " + ncclGetErrorString(state) + " (" + ncclGetLastError(comm) + ")", false);
        throw_if_failed_locked();
      }
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(kReadyPoll);
    }
  }

  // wait_ready_locked, failing the communicator with a timeout when the deadline passes.
  void wait_ready_or_fail_locked(const std::string& what, Clock::time_point deadline) {
    if (wait_ready_locked(what, deadline)) return;
    fail_locked(what + " did not finish within " + std::to_string(timeout_s) + " s", true);
    throw_if_failed_locked();
  }

  std::string report(const Fault& fault) const {
    return report_stall([this](double wait_s) { return control->peer_progress(wait_s); }, timeout_s, fault.headline,
                        fault.subject);
  }

  // Creates the stream and the NCCL communicator from the id shared in collective #exchange_seq of the control.
  void init(const ncclUniqueId& id, int64_t exchange_seq);

  // Queues a collective on the NCCL stream after the caller's current stream; `launch` issues the NCCL call.
  WorkHandle enqueue(const torch::Tensor& tensor, const std::string& op,
                     const std::function<ncclResult_t(ncclComm_t, cudaStream_t)>& launch);
  // The part of enqueue after the collective has its sequence number.
  void launch_locked(const torch::Tensor& tensor, const Pending& collective,
                     const std::function<ncclResult_t(ncclComm_t, cudaStream_t)>& launch);

  void watch();
  // One watchdog pass: retires completed collectives; returns the first fault found, if any.
  std::optional<Fault> check_pending();
  void shut_down();
};

namespace {

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<NcclCommunicator::State> state, std::shared_ptr<CudaEvent> done)
      : state_(std::move(state)), done_(std::move(done)) {}

  void wait() override {
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->throw_if_failed_locked();
    }
    const auto stream = c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(state_->device));
    IJEPA_CUDA_CHECK(cudaStreamWaitEvent(stream.stream(), done_->get(), 0));
  }

  // An aborted collective's event completes too, so a failed communicator has no completed collective.
  bool completed() override {
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      if (!state_->failure.empty()) return false;
    }
    return cudaEventQuery(done_->get()) == cudaSuccess;
  }

 private:
  std::shared_ptr<NcclCommunicator::State> state_;
  std::shared_ptr<CudaEvent> done_;
};

// "all_reduce(fp32, 64 B) #5 on rank 0": how errors name a collective.
std::string name_of(const std::string& op, int64_t seq, int rank) {
  return op + " #" + std::to_string(seq) + " on rank " + std::to_string(rank);
}

}  // namespace

void NcclCommunicator::State::init(const ncclUniqueId& id, int64_t exchange_seq) {
  int lowest = 0, highest = 0;
  IJEPA_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&lowest, &highest));
  IJEPA_CUDA_CHECK(cudaStreamCreateWithPriority(&stream, cudaStreamNonBlocking, highest));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  std::unique_lock<std::mutex> lock(mutex);
  IJEPA_NCCL_CHECK(ncclCommInitRankConfig(&comm, control->world_size(), id, control->rank(), &config));
  if (wait_ready_locked("ncclCommInitRankConfig", Clock::now() + to_duration(timeout_s))) return;
  // Every rank that got the id is in NCCL's init: the peers' records name those that are gone or elsewhere.
  std::ostringstream headline;
  headline << "NCCL setup (ncclCommInitRankConfig, after the id exchange #" << exchange_seq
           << ") did not finish within " << timeout_s << " s";
  const Fault fault{headline.str(), {"all_gather_bytes", exchange_seq, control->rank(), Arrival::kEntered}, true};
  lock.unlock();
  const std::string why = report(fault);
  lock.lock();
  fail_locked(why, true);
  throw_if_failed_locked();
}

WorkHandle NcclCommunicator::State::enqueue(const torch::Tensor& tensor, const std::string& op,
                                            const std::function<ncclResult_t(ncclComm_t, cudaStream_t)>& launch) {
  std::lock_guard<std::mutex> lock(mutex);
  throw_if_failed_locked();
  if (comm == nullptr) throw DistError(op + ": the NCCL communicator is closed");
  Pending collective{std::make_shared<CudaEvent>(), Clock::now() + to_duration(timeout_s), op,
                     control->progress().begin(op)};
  try {
    launch_locked(tensor, collective, launch);
  } catch (const std::exception& e) {
    // This rank has entered the collective and its peers may be inside it: the collective order is broken.
    fail_locked(name_of(op, collective.seq, control->rank()) + ": " + e.what(), false);
    throw_if_failed_locked();
  }
  pending.push_back(collective);
  return std::make_shared<NcclWork>(shared_from_this(), collective.done);
}

void NcclCommunicator::State::launch_locked(const torch::Tensor& tensor, const Pending& collective,
                                            const std::function<ncclResult_t(ncclComm_t, cudaStream_t)>& launch) {
  const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  const auto current = c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device));
  {
    const CudaEvent ready;
    IJEPA_CUDA_CHECK(cudaEventRecord(ready.get(), current.stream()));
    IJEPA_CUDA_CHECK(cudaStreamWaitEvent(stream, ready.get(), 0));
  }
  IJEPA_NCCL_CHECK(launch(comm, stream));
  wait_ready_or_fail_locked(name_of(collective.op, collective.seq, control->rank()), collective.deadline);
  IJEPA_CUDA_CHECK(cudaEventRecord(collective.done->get(), stream));
  // The caching allocator must not hand the memory out again before the NCCL stream is done with it.
  c10::cuda::CUDACachingAllocator::recordStream(
      tensor.storage().data_ptr(), c10::cuda::getStreamFromExternal(stream, static_cast<c10::DeviceIndex>(device)));
}

void NcclCommunicator::State::watch() {
  cudaSetDevice(device);
  std::unique_lock<std::mutex> lock(mutex);
  while (!stopping) {
    wake.wait_for(lock, kWatchInterval);
    if (stopping || !failure.empty()) continue;
    std::optional<Fault> fault;
    try {
      fault = check_pending();
    } catch (const DistError& e) {
      fail_locked(e.what(), false);
      log::error(std::string("dist: ") + e.what());
      continue;
    }
    if (!fault) continue;
    // The peer query may take a while and must not hold up other calls on this communicator.
    lock.unlock();
    const auto why =
        fault->timeout ? report_stall_unless_announced([this](double wait_s) { return control->peer_progress(wait_s); },
                                                       timeout_s, fault->subject)
                       : std::optional<std::string>(report(*fault));
    lock.lock();
    if (!why) {  // the ranks it waits for announced work of their own: another timeout
      for (auto& p : pending) {
        if (p.seq == fault->subject.seq) p.deadline = Clock::now() + to_duration(timeout_s);
      }
      continue;
    }
    log::error("dist: " + *why);
    fail_locked(*why, fault->timeout);
  }
}

std::optional<NcclCommunicator::State::Fault> NcclCommunicator::State::check_pending() {
  const int rank = control->rank();
  if (comm != nullptr) {
    ncclResult_t state = ncclSuccess;
    IJEPA_NCCL_CHECK(ncclCommGetAsyncError(comm, &state));
    if (state != ncclSuccess && state != ncclInProgress) {
      const std::string error =
          std::string("NCCL asynchronous error: ") + ncclGetErrorString(state) + " (" + ncclGetLastError(comm) + ")";
      if (pending.empty()) throw DistError(error + " on rank " + std::to_string(rank) + " with no collective pending");
      // The oldest collective pending is the one the device is in.
      const Pending& oldest = pending.front();
      return Fault{oldest.op + " #" + std::to_string(oldest.seq) + " failed with an " + error,
                   {oldest.op, oldest.seq, rank, Arrival::kStarted},
                   false};
    }
  }
  const auto now = Clock::now();
  for (auto it = pending.begin(); it != pending.end();) {
    const cudaError_t status = cudaEventQuery(it->done->get());
    if (status == cudaSuccess) {
      control->progress().complete(it->seq);
      it = pending.erase(it);
      continue;
    }
    if (status != cudaErrorNotReady) IJEPA_CUDA_CHECK(status);
    if (now > it->deadline) {
      const StallSubject subject{it->op, it->seq, rank, Arrival::kStarted};
      return Fault{timeout_headline(subject, timeout_s), subject, true};
    }
    ++it;
  }
  return std::nullopt;
}

void NcclCommunicator::State::shut_down() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  if (watchdog.joinable()) watchdog.join();
  std::lock_guard<std::mutex> lock(mutex);
  if (comm != nullptr) {
    try {
      // Flushes what is queued, bounded like any collective; a failure aborts instead.
      IJEPA_NCCL_CHECK(ncclCommFinalize(comm));
      wait_ready_or_fail_locked("ncclCommFinalize", Clock::now() + to_duration(timeout_s));
      ncclCommDestroy(comm);
      comm = nullptr;
    } catch (const DistError& e) {
      log::error(std::string("dist: closing NCCL: ") + e.what());
    }
  }
  if (stream != nullptr) {
    cudaStreamDestroy(stream);
    stream = nullptr;
  }
}

namespace {

// Rank 0 makes the id; every rank receives it over the control. Returns the id and the exchange's number.
std::pair<ncclUniqueId, int64_t> share_unique_id(Communicator& control) {
  ncclUniqueId id;
  std::string mine;
  if (control.rank() == 0) {
    IJEPA_NCCL_CHECK(ncclGetUniqueId(&id));
    mine.assign(reinterpret_cast<const char*>(&id), sizeof(id));
  }
  const std::string shared = control.all_gather_bytes(mine).at(0);
  const int64_t exchange_seq = control.progress().snapshot().called;
  if (shared.size() != sizeof(id)) throw DistError("NCCL setup: rank 0 sent no unique id");
  std::memcpy(&id, shared.data(), sizeof(id));
  return {id, exchange_seq};
}

}  // namespace

NcclCommunicator::NcclCommunicator(std::unique_ptr<Communicator> control, int device_index, double timeout_s)
    : control_(std::move(control)), state_(std::make_shared<State>()) {
  state_->timeout_s = timeout_s;
  state_->control = control_.get();
  try {
    state_->device = device_index >= 0 ? device_index : gpu_for_local_rank(control_->local_rank());
    IJEPA_CUDA_CHECK(cudaSetDevice(state_->device));
    const auto [id, exchange_seq] = share_unique_id(*control_);
    state_->init(id, exchange_seq);
  } catch (const std::exception& e) {
    // Unless the job ends here, the other ranks wait in the id exchange or in NCCL's init until the timeout and
    // then report that, not the cause. MPI's abort does not return.
    if (world_size() > 1) {
      const bool input = dynamic_cast<const common::InputError*>(&e) != nullptr;
      control_->abort("NCCL setup failed on rank " + std::to_string(rank()) + ": " + e.what(), input ? 2 : 1);
    }
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->fail_locked(e.what(), false);  // aborts a half-made NCCL communicator
    }
    state_->shut_down();
    throw;
  }
  state_->watchdog = std::thread([state = state_.get()] { state->watch(); });
}

NcclCommunicator::~NcclCommunicator() { state_->shut_down(); }

torch::Device NcclCommunicator::device() const {
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(state_->device));
}

WorkHandle NcclCommunicator::all_reduce(const torch::Tensor& tensor, ReduceOp op) {
  check_collective_tensor(tensor, device(), "all_reduce");
  check_reducible(tensor, op);
  const ncclDataType_t type = nccl_type(tensor.scalar_type());
  const ncclRedOp_t reduce = op == ReduceOp::kAverage ? ncclAvg : ncclSum;
  auto work = state_->enqueue(tensor, describe_op("all_reduce", tensor), [&](ncclComm_t comm, cudaStream_t stream) {
    return ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(), type, reduce, comm, stream);
  });
  return work;
}

WorkHandle NcclCommunicator::broadcast(const torch::Tensor& tensor, int root) {
  check_collective_tensor(tensor, device(), "broadcast");
  check_root(root, world_size());
  return state_->enqueue(tensor, describe_op("broadcast", tensor), [&](ncclComm_t comm, cudaStream_t stream) {
    return ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), tensor.nbytes(), ncclUint8, root, comm, stream);
  });
}

void NcclCommunicator::synchronize() {
  // Without the lock: a collective stuck on a dead peer ends when the watchdog, which needs the lock, aborts
  // the communicator. Its failure is the news; a CUDA error from the aborted stream only comes after it.
  const cudaError_t synced = cudaStreamSynchronize(state_->stream);
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->throw_if_failed_locked();
  }
  IJEPA_CUDA_CHECK(synced);
}

std::vector<std::string> NcclCommunicator::all_gather_bytes(const std::string& bytes) {
  return control_->all_gather_bytes(bytes);
}

void NcclCommunicator::abort(const std::string& reason, int exit_code) {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->fail_locked("aborted: " + reason, false);
  }
  control_->abort(reason, exit_code);
}

std::vector<std::optional<ProgressRecord>> NcclCommunicator::peer_progress(double wait_s) {
  return control_->peer_progress(wait_s);
}

}  // namespace ijepa::dist
