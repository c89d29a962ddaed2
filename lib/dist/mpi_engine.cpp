// The MPI progress thread: posting, completion, and the progress side channel.
#include "dist/mpi_engine.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace ijepa::dist {
namespace {

using common::to_duration;

constexpr int kQueryTag = 1;
constexpr int kReplyTag = 2;
constexpr int kReplyBytes = static_cast<int>(8 + kProgressWireBytes);  // round number, then the record
// Idle, the thread wakes this often: to answer peers' progress queries, and to take over collectives that
// submit() posted (it does not wake the thread: a thread woken per collective competes with the caller for
// the core, which costs milliseconds whenever the node is busy).
constexpr auto kIdleWait = std::chrono::milliseconds(1);

// In the background (collectives in flight, nobody waiting) a pass that moved nothing is followed by a short
// sleep: the thread shares the cores with backward, and polling flat out (even yielding) took compute
// time from it without moving data faster, while 50 us left less of the communication for finish() than
// 200 us did, with no slower backward (BENCHMARKS.md). A waiter drives its collective itself, without pausing.
// Each pass tests every collective in flight: testing only the oldest starves the others (libnbc advances a
// collective's schedule when that collective is tested). The side channel is polled every kChannelInterval.
constexpr auto kBackgroundPoll = std::chrono::microseconds(50);
constexpr auto kChannelInterval = std::chrono::milliseconds(1);
// At most this many collectives run at once; later ones start as these finish. Two hide one's latency
// behind the other's transfer; more only interleave their memory traffic (8 at once: 4 MiB in 1 MiB buckets
// at 0.2-0.9x of one MPI_Allreduce, against 0.8-1.0x with 2).
constexpr size_t kMaxInFlight = 2;
constexpr auto kSendGrace = std::chrono::seconds(1);  // for replies still in flight at shutdown

std::string round_bytes(int64_t round) {
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &round, 8);
  return bytes;
}

int64_t round_of(const char* bytes) {
  int64_t round = 0;
  std::memcpy(&round, bytes, 8);
  return round;
}

class MpiWork : public Work {
 public:
  MpiWork(std::shared_ptr<MpiEngine> engine, std::shared_ptr<MpiTask> task)
      : engine_(std::move(engine)), task_(std::move(task)) {}

  void wait() override {
    while (true) {
      engine_->drive(*task_);
      {
        std::unique_lock<std::mutex> lock(task_->mutex);
        if (task_->done_cv.wait_until(lock, task_->deadline, [&] { return task_->done.load(); })) {
          if (task_->error.empty()) return;
          if (task_->timed_out) throw CollectiveTimeout(task_->error);
          throw DistError(task_->error);
        }
      }
      if (const auto report = engine_->handle_timeout(*task_)) throw CollectiveTimeout(*report);
    }
  }

  // `error` is written before `done`, so it is complete once `done` reads true.
  bool completed() override { return task_->done && task_->error.empty(); }

 private:
  std::shared_ptr<MpiEngine> engine_;
  std::shared_ptr<MpiTask> task_;
};

// MPI_Testall over a task's requests; true once all have completed. Throws DistError with the failing request's
// own error: on MPI_ERR_IN_STATUS the return code says only that some request failed, while its status holds the
// cause (e.g. MPI_ERR_TRUNCATE when the ranks pass different sizes).
bool test_all(MpiTask& task) {
  const int count = static_cast<int>(task.requests.size());
  task.statuses.resize(task.requests.size());
  int done = 0;
  const int code = MPI_Testall(count, task.requests.data(), &done, task.statuses.data());
  if (code == MPI_ERR_IN_STATUS) {
    for (int i = 0; i < count; ++i) {
      const int error = task.statuses[i].MPI_ERROR;
      if (error == MPI_SUCCESS || error == MPI_ERR_PENDING) continue;
      throw DistError("MPI request " + std::to_string(i + 1) + " of " + std::to_string(count) +
                      " failed: " + mpi_error_string(error));
    }
  }
  IJEPA_MPI_CHECK(code);
  return done != 0;
}

// A collective that failed or timed out may still be running in MPI (a late peer completes it, writing into its
// tensors or the ring's scratch); its task, whose phases hold those, must outlive the process's last MPI call.
void keep_alive_for_ever(std::vector<std::shared_ptr<MpiTask>> tasks) {
  if (!tasks.empty()) new std::vector<std::shared_ptr<MpiTask>>(std::move(tasks));
}

// Cancels a pending receive and waits for it (a cancel completes promptly, or the message already landed).
void cancel_receive(MPI_Request& request) {
  if (request == MPI_REQUEST_NULL) return;
  MPI_Cancel(&request);
  MPI_Wait(&request, MPI_STATUS_IGNORE);
}

}  // namespace

MpiEngine::MpiEngine(MPI_Comm comm, MPI_Comm status_comm, double timeout_s, std::shared_ptr<MpiRuntime> runtime)
    : comm_(comm), status_comm_(status_comm), timeout_s_(timeout_s), runtime_(std::move(runtime)) {
  IJEPA_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  IJEPA_MPI_CHECK(MPI_Comm_size(comm_, &world_));
  IJEPA_MPI_CHECK(MPI_Irecv(query_buffer_, 8, MPI_BYTE, MPI_ANY_SOURCE, kQueryTag, status_comm_, &query_receive_));
  thread_ = std::thread([this] { run(); });
}

MpiEngine::~MpiEngine() { stop(); }

WorkHandle MpiEngine::submit(const std::string& op, std::vector<MpiPhase> phases, std::function<void()> finish) {
  auto task = std::make_shared<MpiTask>();
  task->op = op;
  task->phases = std::move(phases);
  task->finish = std::move(finish);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!failure_.empty()) {
      const std::string message = op + ": the communicator failed earlier: " + failure_;
      if (failure_is_timeout_) throw CollectiveTimeout(message);
      throw DistError(message);
    }
    if (stopping_) throw DistError(op + ": the communicator is shutting down");
    // Under the lock, so that sequence numbers follow the queue order.
    task->seq = progress_.begin(op);
    task->deadline = Clock::now() + to_duration(timeout_s_);
    submitted_.push_back(task);
  }
  // Post it from here unless the progress thread is in a pass (then it takes it in its next one); the
  // thread drives it to completion unless a waiter does.
  if (const std::unique_lock<std::mutex> progress(progress_mutex_, std::try_to_lock); progress.owns_lock()) {
    try {
      if (!closed_) poll_once();
    } catch (const std::exception& e) {
      fail_all(std::string("MPI progress failed: ") + e.what());
    }
  }
  return std::make_shared<MpiWork>(shared_from_this(), task);
}

std::vector<std::optional<ProgressRecord>> MpiEngine::query_peers(double wait_s) {
  std::vector<std::optional<ProgressRecord>> fallback(world_);
  fallback[rank_] = progress_.snapshot();
  PeerQuery query;
  query.wait_s = wait_s;
  auto answer = query.answer.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return fallback;
    queries_.push_back(std::move(query));
  }
  wake_.notify_one();
  if (answer.wait_for(to_duration(wait_s + 1.0)) != std::future_status::ready) return fallback;
  return answer.get();
}

std::optional<std::string> MpiEngine::handle_timeout(MpiTask& task) {
  const StallSubject subject{task.op, task.seq, rank_, Arrival::kEntered};
  const auto report =
      report_stall_unless_announced([this](double wait_s) { return query_peers(wait_s); }, timeout_s_, subject);
  if (!report) {
    task.deadline = Clock::now() + to_duration(timeout_s_);
    return std::nullopt;
  }
  const std::lock_guard<std::mutex> progress(progress_mutex_);
  fail_all(*report, /*timed_out=*/true, &task);
  return report;
}

std::string MpiEngine::name_of(const MpiTask& task) const {
  return task.op + " #" + std::to_string(task.seq) + " on rank " + std::to_string(rank_);
}

void MpiEngine::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MpiEngine::run() {
  std::optional<Clock::time_point> drain_deadline;
  try {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        const bool idle = !busy_ && submitted_.empty() && queries_.empty();
        if (!stopping_ && (idle || drivers_ > 0)) wake_.wait_for(lock, kIdleWait);
        if (stopping_ && !drain_deadline) {
          drain_deadline = Clock::now() + (failure_.empty() ? to_duration(timeout_s_) : Clock::duration::zero());
        }
        if (!stopping_ && drivers_ > 0) continue;
      }
      bool event = false;
      {
        // Never queue behind a driver (each of its unlocks would wake this thread for nothing), nor spin on
        // the lock: whoever holds it (submit() posting, or a waiter about to count itself in) is making
        // progress, and on a rank with one core a spinning thread halves that work's speed.
        const std::unique_lock<std::mutex> progress(progress_mutex_, std::try_to_lock);
        if (!progress.owns_lock()) {
          std::this_thread::sleep_for(kBackgroundPoll);
          continue;
        }
        event = poll_once();
        if (drain_deadline) {
          if (posting_.empty() && in_flight_.empty()) break;
          if (Clock::now() >= *drain_deadline) {
            fail_all("the communicator was shut down while this collective was pending");
            break;
          }
        }
      }
      // Sleep without the lock: a waiter or submit() arriving meanwhile drives and posts at once.
      if (!event) std::this_thread::sleep_for(kBackgroundPoll);
    }
    const std::lock_guard<std::mutex> progress(progress_mutex_);
    shut_down_channel();
  } catch (const std::exception& e) {
    const std::lock_guard<std::mutex> progress(progress_mutex_);
    fail_all(std::string("MPI progress thread failed: ") + e.what());
  }
}

void MpiEngine::drive(const MpiTask& task) {
  ++drivers_;
  try {
    while (!task.done && Clock::now() < task.deadline) {
      const std::unique_lock<std::mutex> progress(progress_mutex_, std::try_to_lock);
      if (!progress.owns_lock()) {
        std::this_thread::yield();  // the progress thread is ending its pass
        continue;
      }
      if (closed_) break;
      poll_once();
    }
  } catch (const std::exception& e) {
    const std::lock_guard<std::mutex> progress(progress_mutex_);
    fail_all(std::string("MPI progress failed: ") + e.what());
  }
  --drivers_;  // the progress thread resumes within kIdleWait; waking it now would cost a switch
}

bool MpiEngine::poll_once() {
  std::optional<PeerQuery> new_query;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (; !submitted_.empty(); submitted_.pop_front()) posting_.push_back(std::move(submitted_.front()));
    if (!active_query_ && !queries_.empty()) {
      new_query = std::move(queries_.front());
      queries_.pop_front();
    }
  }
  if (new_query) start_peer_query(std::move(*new_query));
  // Completions first: a slot that frees now is taken by the next bucket in this pass, not one pass (and,
  // behind backward, one sleep) later.
  bool event = complete_in_flight();
  event = post_phases() || event;
  const auto now = Clock::now();
  if (in_flight_.empty() || now >= next_channel_poll_) {
    event = serve_queries() || event;
    event = advance_peer_query() || event;
    next_channel_poll_ = now + kChannelInterval;
  }
  busy_ = !posting_.empty() || !in_flight_.empty() || active_query_ || !sends_.empty();
  return event;
}

bool MpiEngine::post_phases() {
  bool event = false;
  while (!posting_.empty()) {
    const auto task = posting_.front();
    if (task->next_phase == 0 && in_flight_.size() >= kMaxInFlight) break;
    try {
      if (!task->requests.empty()) {
        if (!test_all(*task)) break;  // later tasks wait: their collectives must be posted after this one's
        task->requests.clear();
      }
      task->phases[task->next_phase++](task->requests);
    } catch (const std::exception& e) {
      fail_all(name_of(*task) + ": " + e.what(), false, task.get());
      return true;
    }
    event = true;
    if (task->next_phase == task->phases.size()) {
      posting_.pop_front();
      in_flight_.push_back(task);
    }
  }
  return event;
}

bool MpiEngine::complete_in_flight() {
  bool event = false;
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    const auto task = *it;
    try {
      if (!test_all(*task)) {
        ++it;
        continue;
      }
      if (task->finish) task->finish();
    } catch (const std::exception& e) {
      fail_all(name_of(*task) + ": " + e.what(), false, task.get());
      return true;
    }
    it = in_flight_.erase(it);
    finish_task(task, "");
    event = true;
  }
  return event;
}

bool MpiEngine::serve_queries() {
  reap_sends();
  bool event = false;
  while (true) {
    int arrived = 0;
    MPI_Status status;
    IJEPA_MPI_CHECK(MPI_Test(&query_receive_, &arrived, &status));
    if (!arrived) break;
    PendingSend& reply = sends_.emplace_back();
    reply.buffer = std::string(query_buffer_, 8) + encode_progress(progress_.snapshot());
    IJEPA_MPI_CHECK(MPI_Isend(reply.buffer.data(), kReplyBytes, MPI_BYTE, status.MPI_SOURCE, kReplyTag, status_comm_,
                              &reply.request));
    IJEPA_MPI_CHECK(MPI_Irecv(query_buffer_, 8, MPI_BYTE, MPI_ANY_SOURCE, kQueryTag, status_comm_, &query_receive_));
    event = true;
  }
  return event;
}

void MpiEngine::reap_sends() {
  for (auto it = sends_.begin(); it != sends_.end();) {
    int done = 0;
    IJEPA_MPI_CHECK(MPI_Test(&it->request, &done, MPI_STATUS_IGNORE));
    it = done ? sends_.erase(it) : std::next(it);
  }
}

void MpiEngine::start_peer_query(PeerQuery request) {
  ActiveQuery& query = active_query_.emplace();
  query.round = next_round_++;
  query.deadline = Clock::now() + to_duration(request.wait_s);
  query.answer = std::move(request.answer);
  query.records.resize(world_);
  query.records[rank_] = progress_.snapshot();
  query.buffers.assign(world_, std::string(kReplyBytes, '\0'));
  query.receives.assign(world_, MPI_REQUEST_NULL);
  for (int peer = 0; peer < world_; ++peer) {
    if (peer == rank_) continue;
    IJEPA_MPI_CHECK(MPI_Irecv(query.buffers[peer].data(), kReplyBytes, MPI_BYTE, peer, kReplyTag, status_comm_,
                              &query.receives[peer]));
    PendingSend& send = sends_.emplace_back();
    send.buffer = round_bytes(query.round);
    IJEPA_MPI_CHECK(MPI_Isend(send.buffer.data(), 8, MPI_BYTE, peer, kQueryTag, status_comm_, &send.request));
  }
}

bool MpiEngine::advance_peer_query() {
  if (!active_query_) return false;
  ActiveQuery& query = *active_query_;
  bool event = false;
  bool pending = false;
  for (int peer = 0; peer < world_; ++peer) {
    MPI_Request& receive = query.receives[peer];
    if (receive == MPI_REQUEST_NULL) continue;
    int done = 0;
    IJEPA_MPI_CHECK(MPI_Test(&receive, &done, MPI_STATUS_IGNORE));
    if (!done) {
      pending = true;
      continue;
    }
    event = true;
    const std::string& reply = query.buffers[peer];
    if (round_of(reply.data()) == query.round) {
      query.records[peer] = decode_progress(reply.substr(8));
    } else {  // a late answer to an earlier round
      IJEPA_MPI_CHECK(
          MPI_Irecv(query.buffers[peer].data(), kReplyBytes, MPI_BYTE, peer, kReplyTag, status_comm_, &receive));
      pending = true;
    }
  }
  if (pending && Clock::now() < query.deadline) return event;
  for (MPI_Request& receive : query.receives) cancel_receive(receive);
  query.answer.set_value(query.records);
  active_query_.reset();
  return true;
}

void MpiEngine::finish_task(const std::shared_ptr<MpiTask>& task, const std::string& error, bool timed_out) {
  {
    std::lock_guard<std::mutex> lock(task->mutex);
    task->error = error;
    task->timed_out = timed_out;
    task->done = true;
  }
  task->done_cv.notify_all();
  if (error.empty()) progress_.complete(task->seq);
}

void MpiEngine::fail_all(const std::string& error, bool timed_out, const MpiTask* culprit) {
  std::deque<std::shared_ptr<MpiTask>> submitted;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_.empty()) {
      failure_ = error;
      failure_is_timeout_ = timed_out;
    }
    submitted.swap(submitted_);
  }
  runtime_->mark_failed();
  std::vector<std::shared_ptr<MpiTask>> started;
  for (const auto* tasks : {&posting_, &in_flight_, &submitted}) {
    for (const auto& task : *tasks) {
      finish_task(task, task.get() == culprit ? error : name_of(*task) + " failed: " + error, timed_out);
      const auto& requests = task->requests;
      if (std::any_of(requests.begin(), requests.end(), [](MPI_Request r) { return r != MPI_REQUEST_NULL; })) {
        started.push_back(task);
      }
    }
  }
  keep_alive_for_ever(std::move(started));
  posting_.clear();
  in_flight_.clear();
}

void MpiEngine::shut_down_channel() {
  closed_ = true;
  cancel_receive(query_receive_);
  if (active_query_) {
    for (MPI_Request& receive : active_query_->receives) cancel_receive(receive);
    active_query_->answer.set_value(active_query_->records);
    active_query_.reset();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& query : queries_) query.answer.set_value(std::vector<std::optional<ProgressRecord>>(world_));
    queries_.clear();
  }
  // Small sends complete locally at once; one still pending after a second has a peer that is gone.
  const auto deadline = Clock::now() + kSendGrace;
  while (!sends_.empty() && Clock::now() < deadline) {
    reap_sends();
    std::this_thread::yield();
  }
  if (!sends_.empty()) {
    log::warn(log::str("dist: ", sends_.size(), " progress messages undelivered at shutdown; skipping MPI_Finalize"));
    runtime_->mark_failed();
    // MPI may still read these buffers; they must outlive the process's last MPI call.
    new std::list<PendingSend>(std::move(sends_));
  }
}

}  // namespace ijepa::dist
