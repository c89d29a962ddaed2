// The progress thread of an MPI communicator (internal to lib/dist).
//
// MPI's non-blocking collectives (libnbc in Open MPI) only advance inside MPI calls, so a collective
// started from a gradient hook would sit idle while backward computes. The engine posts collectives in call
// order (submit() posts at once when it can), a thread drives them with MPI_Test in the background, and a
// waiter drives them itself (as MPI_Wait does) while that thread steps aside, so no hand-off between
// threads sits on the critical path. The thread also answers the peers' progress queries on a side channel
// (a second communicator), so that a stalled rank can learn which ranks have not arrived even while those
// ranks compute, or while everyone is stuck.
//
// The first collective that fails or times out fails the engine: every collective pending fails with it, later
// calls throw its error, and MPI_Finalize is skipped. MPI may still complete the collectives it had started (a
// late peer arrives), so those keep their tensors alive until the process ends.
#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "dist/communicator.h"
#include "dist/mpi_runtime.h"

namespace ijepa::dist {

using common::Clock;

// Posts the non-blocking MPI calls of one phase of a collective, appending their requests.
using MpiPhase = std::function<void(std::vector<MPI_Request>& requests)>;

// One collective as the engine runs it. Phases run one after another (each waits for the previous one's
// requests); all phases of a task are posted before the first phase of any later task, so every rank posts
// its MPI collectives in the same order. `finish` runs once after the last phase, on whichever thread
// completes the collective (the progress thread or a waiter).
struct MpiTask {
  std::string op;
  int64_t seq = 0;
  Clock::time_point deadline;
  std::vector<MpiPhase> phases;
  std::function<void()> finish;

  // Engine side.
  size_t next_phase = 0;
  std::vector<MPI_Request> requests;
  std::vector<MPI_Status> statuses;  // for MPI_Testall over `requests`

  // Shared with waiters: `done` is set under `mutex` (for done_cv) and read without it while spinning.
  std::mutex mutex;
  std::condition_variable done_cv;
  std::atomic<bool> done{false};
  std::string error;       // empty on success, set before done
  bool timed_out = false;  // the error is a timeout (this collective's or an earlier one's); set before done
};

class MpiEngine : public std::enable_shared_from_this<MpiEngine> {
 public:
  MpiEngine(MPI_Comm comm, MPI_Comm status_comm, double timeout_s, std::shared_ptr<MpiRuntime> runtime);
  ~MpiEngine();  // stop()
  MpiEngine(const MpiEngine&) = delete;
  MpiEngine& operator=(const MpiEngine&) = delete;

  // Queues a collective; the returned handle's wait() honours the timeout. Throws DistError once the engine
  // has failed or stopped, CollectiveTimeout (with the first report) once a collective has timed out.
  WorkHandle submit(const std::string& op, std::vector<MpiPhase> phases, std::function<void()> finish);

  // Drives progress on the calling thread until `task` is done or its deadline passes, while the progress
  // thread steps aside (as MPI_Wait does): a waiter has nothing else to do, and handing work between two
  // threads costs milliseconds whenever a node is busy.
  void drive(const MpiTask& task);

  // Every rank's progress record (own record at rank()); nullopt for ranks that did not answer in wait_s.
  std::vector<std::optional<ProgressRecord>> query_peers(double wait_s);

  // For `task` past its deadline: when the ranks it waits for announce local work (announced_wait), warns, moves the
  // deadline a timeout on and returns nullopt. Otherwise builds the stall report from the peers' records, fails
  // every collective pending (the collective order is broken; later calls throw the report), marks the MPI runtime
  // failed and returns the report. Called by the task's only waiter, the one thread that reads its deadline.
  std::optional<std::string> handle_timeout(MpiTask& task);

  ProgressTracker& progress() { return progress_; }
  int rank() const { return rank_; }
  int world_size() const { return world_; }
  double timeout_s() const { return timeout_s_; }

  // Drains the collectives in flight (for at most the timeout unless failed), closes the side channel and
  // joins the thread. Idempotent.
  void stop();

 private:
  struct PendingSend {
    std::string buffer;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  struct PeerQuery {
    double wait_s = 0;
    std::promise<std::vector<std::optional<ProgressRecord>>> answer;
  };
  struct ActiveQuery {
    int64_t round = 0;
    Clock::time_point deadline;
    std::vector<std::optional<ProgressRecord>> records;
    std::vector<std::string> buffers;   // reply buffers, one per rank
    std::vector<MPI_Request> receives;  // one per rank; MPI_REQUEST_NULL when answered or self
    std::promise<std::vector<std::optional<ProgressRecord>>> answer;
  };

  void run();
  // One pass: takes new work, posts, completes, serves the side channel (every kChannelInterval while
  // collectives are in flight). These run under progress_mutex_ and return true when something happened.
  bool poll_once();
  bool post_phases();
  bool complete_in_flight();
  bool serve_queries();  // answers peers' progress queries
  void reap_sends();
  bool advance_peer_query();
  void start_peer_query(PeerQuery request);
  void finish_task(const std::shared_ptr<MpiTask>& task, const std::string& error, bool timed_out = false);
  void shut_down_channel();
  // "all_reduce(fp32, 64 B) #5 on rank 0": how errors name a collective.
  std::string name_of(const MpiTask& task) const;
  // Fails every pending collective, the engine and the MPI runtime. `culprit`'s error is `error` itself; the
  // others' names that they failed because of it. Collectives that MPI may still be running are kept alive.
  void fail_all(const std::string& error, bool timed_out = false, const MpiTask* culprit = nullptr);

  MPI_Comm comm_;
  MPI_Comm status_comm_;
  double timeout_s_;
  std::shared_ptr<MpiRuntime> runtime_;
  int rank_ = 0;
  int world_ = 1;
  ProgressTracker progress_;

  std::mutex mutex_;  // guards the fields up to thread_
  std::condition_variable wake_;
  std::deque<std::shared_ptr<MpiTask>> submitted_;
  std::deque<PeerQuery> queries_;
  bool stopping_ = false;
  std::string failure_;              // set once the engine has failed; later submits throw it
  bool failure_is_timeout_ = false;  // ... as a CollectiveTimeout
  std::atomic<int> drivers_{0};      // waiters in drive()
  std::atomic<bool> busy_{false};    // collectives, a peer query or replies in flight
  std::thread thread_;

  // Whoever holds progress_mutex_: the progress thread, submit() posting, or a waiter in drive().
  std::mutex progress_mutex_;
  bool closed_ = false;  // the side channel is shut: no more MPI calls
  Clock::time_point next_channel_poll_;
  std::deque<std::shared_ptr<MpiTask>> posting_;  // not all phases posted yet, in call order
  std::deque<std::shared_ptr<MpiTask>> in_flight_;
  MPI_Request query_receive_ = MPI_REQUEST_NULL;
  char query_buffer_[8] = {};     // the querier's round number
  std::list<PendingSend> sends_;  // a list: MPI holds pointers into the buffers
  std::optional<ActiveQuery> active_query_;
  int64_t next_round_ = 1;
};

}  // namespace ijepa::dist
