// The coordinator's model of runs and workers: the rules of their states, kept in memory for speed and
// written through to Storage so that a restart resumes where it stopped.
//
// Run states: RUNNING -> STALLED (a worker silent past the heartbeat timeout, or no worker live for that long;
// back to RUNNING when one reports again), RUNNING/STALLED -> STOPPING (StopRun; delivered in heartbeat
// replies), and the final FINISHED, STOPPED or FAILED (FinishRun from rank 0, a failure from any rank, a
// stopping run left without a live worker, or a stalled run left without one for longer than
// fail_lost_after_s). Rank 0 creating a run that ended reopens it (a resumed training job keeps its name). Rank 0
// creating, with another world size, an active run that is abandoned (its workers all lost, or none live for a
// heartbeat timeout) takes it over: the old run ends FAILED and is reopened, so a crashed job resumed on a
// different number of ranks is not locked out by its dead predecessor.
//
// Heartbeats change memory only and mark their records dirty; flush() (a few times a second, from the server)
// writes them in one transaction, so heartbeats never wait on SQLite. Every other change (runs created,
// stopped or ended, workers registered or lost, events) is written before its call returns, together with the
// events it records in one transaction.
//
// Requests must have passed validation.h. Methods throw NotFoundError, ConflictError, or std::runtime_error
// when the database fails; the service maps them to gRPC codes. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "coord/storage.h"
#include "ijepa/coordinator/v1/coordinator.pb.h"

namespace ijepa::metrics {
class CoordinatorMetrics;
}

namespace ijepa::coord {

// The thing asked for does not exist (gRPC NOT_FOUND).
class NotFoundError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The request conflicts with the run's state (gRPC FAILED_PRECONDITION).
class ConflictError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RegistryOptions {
  double heartbeat_timeout_s = 30.0;  // a worker silent this long is lost
  double retention_s = 3600.0;        // an ended run's metric series stay this long
  double fail_lost_after_s = 600.0;   // a run abandoned this long (no live worker) ends FAILED
  std::function<double()> clock;      // seconds since the Unix epoch; empty: the system clock
  double forget_after_s = 0.0;        // an ended run, its workers and events are deleted this long after (0: never)
};

// Position of one watcher in a run's history.
struct WatchCursor {
  uint64_t revision = 0;  // 0: nothing seen yet
  int64_t last_event_id = 0;
};

class RunRegistry {
 public:
  // Loads every run and worker from STORAGE. Workers of active runs count as just seen, so a coordinator that
  // was down longer than the timeout does not declare them lost at once. METRICS may be null.
  RunRegistry(Storage& storage, metrics::CoordinatorMetrics* metrics, RegistryOptions options);
  // Flushes (errors are logged: a destructor cannot report them).
  ~RunRegistry();
  RunRegistry(const RunRegistry&) = delete;
  RunRegistry& operator=(const RunRegistry&) = delete;

  v1::CreateRunResponse create_run(const v1::CreateRunRequest& request);
  v1::GetRunResponse get_run(const v1::GetRunRequest& request);
  v1::ListRunsResponse list_runs(const v1::ListRunsRequest& request);
  v1::StopRunResponse stop_run(const v1::StopRunRequest& request);
  v1::FinishRunResponse finish_run(const v1::FinishRunRequest& request);
  v1::RegisterWorkerResponse register_worker(const v1::RegisterWorkerRequest& request);
  v1::HeartbeatResponse heartbeat(const v1::HeartbeatRequest& request);
  void report_events(const v1::ReportEventsRequest& request);

  // Waits up to TIMEOUT for the run to change after CURSOR. Returns true with UPDATE filled (the run, its
  // workers, the events since the cursor) and the cursor advanced; false on timeout or after shutdown().
  // The first call (revision 0) returns at once.
  bool next_update(const std::string& name, WatchCursor& cursor, std::chrono::milliseconds timeout,
                   v1::WatchRunResponse& update);

  // Marks silent workers lost (stalling their runs), fails runs left without a live worker past
  // fail_lost_after_s, refreshes heartbeat ages, drops the metric series of runs past retention and deletes runs
  // ended more than forget_after_s ago. The server calls it about once a second.
  void tick();

  // Writes the changes that heartbeats made since the last flush. Throws std::runtime_error when the
  // database fails (the changes stay in memory and go with the next successful write).
  void flush();

  // Wakes and ends every next_update() wait; later waits return false at once.
  void shutdown();

 private:
  struct RunEntry {
    v1::Run run;
    std::map<int32_t, v1::Worker> workers;
    uint64_t revision = 1;
    bool series_removed = false;
    // Since when no worker has been live (0 while one is), and since when the run has been abandoned (see
    // run_registry_liveness.cpp; 0 while it is not). Kept in memory only: a restarted coordinator counts both
    // afresh, as it does a live worker's silence.
    double idle_since = 0.0;
    double abandoned_since = 0.0;
  };

  double now() const;
  RunEntry& entry(const std::string& name);  // throws NotFoundError
  v1::Worker& worker(RunEntry& entry, int32_t rank);
  v1::Run new_run(const v1::CreateRunRequest& request, double now) const;
  void reopen(RunEntry& entry, const v1::CreateRunRequest& request, double now);
  void record_event(RunEntry& entry, int32_t rank, v1::EventType type, int64_t step, const std::string& message,
                    double value = 0.0);
  void apply_metrics(RunEntry& entry, v1::Worker& worker, const v1::HeartbeatRequest& request, double now);
  void refresh_run(RunEntry& entry, double now);
  void end_run(RunEntry& entry, v1::RunState state, const std::string& reason, double now);
  bool expire_workers(RunEntry& entry, double now);
  bool expire_idle(RunEntry& entry, double now);
  bool fail_if_abandoned(RunEntry& entry, double now);
  void forget(const std::vector<std::string>& names);
  // "all workers lost: no heartbeat since <UTC time> (<age> ago)", or "no worker registered since ..." (or "no
  // live worker since ...") for an abandoned run without lost workers.
  std::string abandoned_reason(const RunEntry& entry, double now) const;
  static std::string idle_text(const RunEntry& entry);  // "no worker registered" or "no live worker"
  // Updates the entry's idle_since and abandoned_since from its LIVE and LOST worker counts; true when abandoned.
  bool track_abandonment(RunEntry& entry, int live, int lost, double now) const;
  // Mark records for the next write_dirty() or flush() (nothing is written here); mark_dirty() also bumps the
  // run's revision and wakes its watchers.
  void mark_dirty(RunEntry& entry, double now);
  void mark_worker_dirty(const v1::Worker& worker);
  // What one transaction writes: the dirty runs and workers and the events recorded since the last write.
  struct Batch {
    std::vector<v1::Run> runs;
    std::vector<v1::Worker> workers;
    std::vector<v1::Event> events;
    bool empty() const { return runs.empty() && workers.empty() && events.empty(); }
  };
  // Snapshots the dirty records and pending events and clears them; after a failed write, requeue_dirty() puts
  // them back for the next one.
  Batch collect_dirty();              // requires mutex_
  void requeue_dirty(Batch&& batch);  // requires mutex_
  void write(Batch& batch);           // requires storage_mutex_
  void write_dirty();                 // requires mutex_; writes before returning
  void publish_counts();
  void publish_progress(const RunEntry& entry);
  void restore(RunEntry& entry, double now);

  Storage& storage_;
  metrics::CoordinatorMetrics* metrics_;
  RegistryOptions options_;
  std::mutex mutex_;
  // Serializes SQLite use. Taken after mutex_ (never the other way round) and, in flush(), held across the
  // release of mutex_, so records reach the database in the order their snapshots were taken.
  std::mutex storage_mutex_;
  std::set<std::string> dirty_runs_;
  std::set<std::pair<std::string, int32_t>> dirty_workers_;
  // Recorded but not yet written: they go in the transaction of the change that caused them, so the database
  // never holds a change without its event or an event without its change.
  std::vector<v1::Event> pending_events_;
  std::condition_variable changed_;
  std::map<std::string, RunEntry> runs_;
  bool shutting_down_ = false;
};

}  // namespace ijepa::coord
