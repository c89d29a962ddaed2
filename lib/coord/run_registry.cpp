// RunRegistry, part one: the operations and the rules of run and worker states. Part two
// (run_registry_io.cpp) moves state out of memory: loading, write-behind to SQLite, events, metrics. Part three
// (run_registry_liveness.cpp) follows the workers' heartbeats: lost workers, stalled and abandoned runs.
//
// Every public method holds mutex_ for its whole length, so changes happen in one order.
#include "coord/run_registry.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "coord/records.h"
#include "coord/validation.h"
#include "metrics/coordinator_metrics.h"

namespace ijepa::coord {
namespace {

constexpr int kDefaultEventsShown = 20;
constexpr int kDefaultListLimit = 100;
constexpr int kMaxEventsPerUpdate = 1000;

std::string process_text(const std::string& host, int64_t pid) {
  return "host " + host + " pid " + std::to_string(pid);
}

// A warning when REQUEST registers a rank that another process still holds live; empty otherwise. Not refused: a
// requeued Slurm job legitimately restarts a rank within the heartbeat timeout, but two jobs sharing a run name
// look the same, so the history should say so.
std::string replacement_warning(const std::map<int32_t, v1::Worker>& workers,
                                const v1::RegisterWorkerRequest& request) {
  const auto found = workers.find(request.rank());
  if (found == workers.end() || !is_live(found->second.state())) return "";
  const v1::Worker& old = found->second;
  if (old.host() == request.host() && old.pid() == request.pid()) return "";
  return "warning: rank " + std::to_string(request.rank()) + " registered again from " +
         process_text(request.host(), request.pid()) + " while " + process_text(old.host(), old.pid()) +
         " was live (a requeued job, or two jobs with one run name?)";
}

}  // namespace

RunRegistry::RunEntry& RunRegistry::entry(const std::string& name) {
  auto it = runs_.find(name);
  if (it == runs_.end()) throw NotFoundError("run '" + name + "' does not exist");
  return it->second;
}

v1::Worker& RunRegistry::worker(RunEntry& entry, int32_t rank) {
  auto it = entry.workers.find(rank);
  if (it == entry.workers.end()) {
    throw NotFoundError("run '" + entry.run.name() + "' has no registered rank " + std::to_string(rank));
  }
  return it->second;
}

v1::Run RunRegistry::new_run(const v1::CreateRunRequest& request, double now) const {
  v1::Run run;
  run.set_name(request.name());
  run.set_state(v1::RUN_STATE_RUNNING);
  run.set_world_size(request.world_size());
  run.set_host(request.host());
  run.set_created_time(now);
  run.set_updated_time(now);
  return run;
}

v1::CreateRunResponse RunRegistry::create_run(const v1::CreateRunRequest& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  const double t = now();
  v1::CreateRunResponse response;
  auto it = runs_.find(request.name());
  if (it == runs_.end()) {
    {  // first, so that a failed write leaves no run in memory that the database lacks
      std::lock_guard<std::mutex> storage_lock(storage_mutex_);
      storage_.save_config(request.name(), request.config_text());
    }
    RunEntry& created = runs_[request.name()];
    created.run = new_run(request, t);
    created.idle_since = t;  // its ranks have a heartbeat timeout to register
    record_event(created, request.rank(), v1::EVENT_TYPE_RUN_CREATED, 0,
                 "created with world size " + std::to_string(request.world_size()));
    response.set_created(true);
    it = runs_.find(request.name());
  } else if (is_active(it->second.run.state()) && it->second.run.world_size() != request.world_size()) {
    RunEntry& old = it->second;
    const bool abandoned = old.abandoned_since > 0.0;
    if (!abandoned || request.rank() != 0) {
      throw ConflictError(
          "run '" + request.name() + "' is active with world size " + std::to_string(old.run.world_size()) + ", not " +
          std::to_string(request.world_size()) +
          (abandoned ? "; it has no live worker: rank 0 of the new job takes it over"
                     : "; a job of another world size may take it over once it has had no live worker for the "
                       "heartbeat timeout"));
    }
    end_run(old, v1::RUN_STATE_FAILED,
            abandoned_reason(old, t) + "; taken over by a job with world size " + std::to_string(request.world_size()),
            t);
    reopen(old, request, t);
  } else if (!is_active(it->second.run.state()) && request.rank() == 0) {
    reopen(it->second, request, t);
  }
  mark_dirty(it->second, t);
  write_dirty();
  publish_counts();
  *response.mutable_run() = it->second.run;
  return response;
}

// The new job's ranks register afresh. The old job's workers, progress and per-rank series would only mislead:
// a job resumed from an earlier step would show the old step and loss until it passed them.
void RunRegistry::reopen(RunEntry& entry, const v1::CreateRunRequest& request, double now) {
  const std::string previous = state_name(entry.run.state());
  const int64_t previous_step = entry.run.latest().step();
  v1::Run& run = entry.run;
  {  // first, so that a failed write leaves the run as it was
    std::lock_guard<std::mutex> storage_lock(storage_mutex_);
    for (const auto& [rank, w] : entry.workers) storage_.delete_worker(run.name(), rank);
    storage_.save_config(run.name(), request.config_text());
  }
  for (const auto& [rank, w] : entry.workers) {
    if (metrics_) metrics_->remove_worker(run.name(), rank);
  }
  entry.workers.clear();
  run.set_state(v1::RUN_STATE_RUNNING);
  run.set_world_size(request.world_size());
  run.set_updated_time(now);
  run.set_ended_time(0);
  run.clear_reason();
  run.set_stop_requested(false);
  run.clear_stop_reason();
  run.clear_latest();
  run.set_live_workers(0);
  run.set_images_per_second(0.0);
  entry.series_removed = false;
  entry.idle_since = now;  // the new job's ranks have a heartbeat timeout to register
  entry.abandoned_since = 0.0;
  record_event(entry, request.rank(), v1::EVENT_TYPE_RUN_CREATED, previous_step,
               "reopened (was " + previous + ") with world size " + std::to_string(request.world_size()));
}

v1::RegisterWorkerResponse RunRegistry::register_worker(const v1::RegisterWorkerRequest& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  const double t = now();
  RunEntry& e = entry(request.run());
  if (!is_active(e.run.state())) {
    throw ConflictError("run '" + request.run() + "' has ended (" + state_name(e.run.state()) +
                        "); rank 0 reopens it by creating it again");
  }
  validate_rank(request.rank(), e.run.world_size());
  auto found = e.workers.find(request.rank());
  const bool was_lost = found != e.workers.end() && found->second.state() == v1::WORKER_STATE_LOST;
  const std::string warning = replacement_warning(e.workers, request);
  v1::Worker& w = e.workers[request.rank()];
  w.set_run(request.run());
  w.set_rank(request.rank());
  w.set_host(request.host());
  w.set_pid(request.pid());
  w.set_state(v1::WORKER_STATE_STARTING);
  w.set_registered_time(t);
  w.set_last_heartbeat_time(t);
  // A new process (e.g. a requeued job resuming from a checkpoint) counts its steps afresh, from wherever it is.
  w.clear_latest();
  mark_worker_dirty(w);
  record_event(e, request.rank(), was_lost ? v1::EVENT_TYPE_WORKER_RECOVERED : v1::EVENT_TYPE_WORKER_REGISTERED,
               w.step(), process_text(request.host(), request.pid()));
  if (!warning.empty()) record_event(e, request.rank(), v1::EVENT_TYPE_MESSAGE, w.step(), warning);
  refresh_run(e, t);
  mark_dirty(e, t);
  write_dirty();
  publish_counts();
  v1::RegisterWorkerResponse response;
  response.set_stop_requested(e.run.stop_requested());
  response.set_stop_reason(e.run.stop_reason());
  return response;
}

v1::HeartbeatResponse RunRegistry::heartbeat(const v1::HeartbeatRequest& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  const double t = now();
  RunEntry& e = entry(request.run());
  validate_rank(request.rank(), e.run.world_size());  // as ReportEvents and FinishRun: bad input, not unknown
  v1::Worker& w = worker(e, request.rank());
  const bool active = is_active(e.run.state());
  const bool recovered = active && w.state() == v1::WORKER_STATE_LOST;
  w.set_last_heartbeat_time(t);
  w.set_step(request.step());
  w.set_epoch(request.epoch());
  // Workers of an ended run stay finished: a late heartbeat must not revive them in the counts.
  if (active) w.set_state(request.state());
  apply_metrics(e, w, request, t);
  mark_worker_dirty(w);
  if (recovered) record_event(e, w.rank(), v1::EVENT_TYPE_WORKER_RECOVERED, w.step(), "heartbeat resumed");
  refresh_run(e, t);
  mark_dirty(e, t);
  if (recovered) {
    write_dirty();
    publish_counts();
  }
  publish_progress(e);
  v1::HeartbeatResponse response;
  response.set_stop_requested(e.run.stop_requested());
  response.set_stop_reason(e.run.stop_reason());
  response.set_run_state(e.run.state());
  return response;
}

void RunRegistry::apply_metrics(RunEntry& e, v1::Worker& w, const v1::HeartbeatRequest& request, double now) {
  for (const v1::StepMetrics& reported : request.metrics()) {
    // A heartbeat resent after its reply was lost carries steps already applied: they must not count twice.
    if (w.has_latest() && reported.step() <= w.latest().step()) continue;
    v1::StepMetrics m = reported;
    if (m.time() == 0.0) m.set_time(now);
    w.set_data_wait_seconds_total(w.data_wait_seconds_total() + m.data_wait_seconds());
    w.set_comm_wait_seconds_total(w.comm_wait_seconds_total() + m.comm_wait_seconds());
    if (!e.run.has_latest() || m.step() >= e.run.latest().step()) *e.run.mutable_latest() = m;
    if (metrics_ && !e.series_removed) metrics_->observe_worker_step(e.run.name(), w.rank(), to_step_report(m));
    *w.mutable_latest() = std::move(m);
  }
}

void RunRegistry::report_events(const v1::ReportEventsRequest& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  const double t = now();
  RunEntry& e = entry(request.run());
  validate_rank(request.rank(), e.run.world_size());
  for (const v1::Event& event : request.events()) {
    record_event(e, request.rank(), event.type(), event.step(), event.message(), event.value());
  }
  mark_dirty(e, t);
  write_dirty();
}

v1::FinishRunResponse RunRegistry::finish_run(const v1::FinishRunRequest& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  const double t = now();
  RunEntry& e = entry(request.run());
  validate_rank(request.rank(), e.run.world_size());
  auto found = e.workers.find(request.rank());
  if (found != e.workers.end()) {
    found->second.set_state(v1::WORKER_STATE_FINISHED);
    found->second.set_step(std::max(found->second.step(), request.step()));
    mark_worker_dirty(found->second);
  }
  if (is_active(e.run.state())) {
    const std::string who = "rank " + std::to_string(request.rank());
    if (request.outcome() == v1::RUN_OUTCOME_FAILED) {
      end_run(e, v1::RUN_STATE_FAILED, who + ": " + (request.reason().empty() ? "failed" : request.reason()), t);
    } else if (request.rank() == 0) {
      const bool stopped = request.outcome() == v1::RUN_OUTCOME_STOPPED;
      end_run(e, stopped ? v1::RUN_STATE_STOPPED : v1::RUN_STATE_FINISHED, request.reason(), t);
    } else {
      refresh_run(e, t);
    }
  }
  mark_dirty(e, t);
  write_dirty();
  publish_counts();
  v1::FinishRunResponse response;
  *response.mutable_run() = e.run;
  return response;
}

v1::StopRunResponse RunRegistry::stop_run(const v1::StopRunRequest& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  const double t = now();
  RunEntry& e = entry(request.name());
  if (!is_active(e.run.state())) {
    throw ConflictError("run '" + request.name() + "' has already ended (" + state_name(e.run.state()) + ")");
  }
  if (!e.run.stop_requested()) {
    const std::string reason = request.reason().empty() ? "stop requested" : request.reason();
    e.run.set_stop_requested(true);
    e.run.set_stop_reason(reason);
    e.run.set_state(v1::RUN_STATE_STOPPING);
    record_event(e, -1, v1::EVENT_TYPE_STOP_REQUESTED, e.run.latest().step(), reason);
    refresh_run(e, t);
  }
  mark_dirty(e, t);
  write_dirty();
  publish_counts();
  v1::StopRunResponse response;
  *response.mutable_run() = e.run;
  return response;
}

// The reads of SQLite here and in next_update come after mutex_ is released: holding it while storage_mutex_ waits
// for flush()'s write would make every heartbeat wait for that write too.
v1::GetRunResponse RunRegistry::get_run(const v1::GetRunRequest& request) {
  v1::GetRunResponse response;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const RunEntry& e = entry(request.name());
    *response.mutable_run() = e.run;
    for (const auto& [rank, w] : e.workers) *response.add_workers() = w;
  }
  const std::string& name = response.run().name();
  const int limit = request.max_events() > 0 ? request.max_events() : kDefaultEventsShown;
  std::lock_guard<std::mutex> storage_lock(storage_mutex_);
  for (v1::Event& event : storage_.events(name, 0, limit)) *response.add_events() = std::move(event);
  if (request.include_config()) response.set_config_text(storage_.load_config(name));
  return response;
}

v1::ListRunsResponse RunRegistry::list_runs(const v1::ListRunsRequest& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<const v1::Run*> runs;
  for (const auto& [name, e] : runs_) {
    if (!request.active_only() || is_active(e.run.state())) runs.push_back(&e.run);
  }
  std::sort(runs.begin(), runs.end(), [](const v1::Run* a, const v1::Run* b) {
    return a->created_time() != b->created_time() ? a->created_time() > b->created_time() : a->name() < b->name();
  });
  const size_t limit = request.limit() > 0 ? request.limit() : kDefaultListLimit;
  v1::ListRunsResponse response;
  for (size_t i = 0; i < runs.size() && i < limit; ++i) *response.add_runs() = *runs[i];
  response.set_total(static_cast<int32_t>(runs.size()));
  return response;
}

bool RunRegistry::next_update(const std::string& name, WatchCursor& cursor, std::chrono::milliseconds timeout,
                              v1::WatchRunResponse& update) {
  uint64_t revision = 0;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    entry(name);  // NotFoundError for a run it does not know
    // Looked up afresh after each wait: tick() may forget an ended run meanwhile.
    const auto current = [&]() -> const RunEntry* {
      const auto it = runs_.find(name);
      return it == runs_.end() ? nullptr : &it->second;
    };
    const bool changed = changed_.wait_for(lock, cursor.revision == 0 ? std::chrono::milliseconds(0) : timeout, [&] {
      return shutting_down_ || current() == nullptr || current()->revision != cursor.revision;
    });
    const RunEntry* e = current();
    if (!changed || shutting_down_ || e == nullptr) return false;
    update.Clear();
    *update.mutable_run() = e->run;
    for (const auto& [rank, w] : e->workers) *update.add_workers() = w;
    revision = e->revision;
  }
  const int limit = cursor.revision == 0 ? kDefaultEventsShown : kMaxEventsPerUpdate;
  std::lock_guard<std::mutex> storage_lock(storage_mutex_);
  for (v1::Event& event : storage_.events(name, cursor.last_event_id, limit)) {
    cursor.last_event_id = std::max(cursor.last_event_id, event.id());
    *update.add_events() = std::move(event);
  }
  cursor.revision = revision;
  return true;
}

void RunRegistry::shutdown() {
  std::lock_guard<std::mutex> lock(mutex_);
  shutting_down_ = true;
  changed_.notify_all();
}

void RunRegistry::end_run(RunEntry& e, v1::RunState state, const std::string& reason, double now) {
  e.run.set_state(state);
  e.run.set_ended_time(now);
  e.run.set_reason(reason);
  for (auto& [rank, w] : e.workers) {
    if (w.state() == v1::WORKER_STATE_FINISHED) continue;
    w.set_state(v1::WORKER_STATE_FINISHED);
    mark_worker_dirty(w);
  }
  e.run.set_live_workers(0);
  e.run.set_images_per_second(0.0);
  record_event(e, -1, v1::EVENT_TYPE_RUN_ENDED, e.run.latest().step(),
               state_name(state) + (reason.empty() ? "" : ": " + reason));
  publish_progress(e);
}

}  // namespace ijepa::coord
