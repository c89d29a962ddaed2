// RunRegistry, part two: where its state leaves memory. Loading at start, write-behind of heartbeat changes
// (collected under mutex_, written under storage_mutex_ in snapshot order), events written in the transaction of
// the change that caused them, and the Prometheus series fed from the records.
#include <chrono>
#include <exception>
#include <iterator>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "coord/records.h"
#include "coord/run_registry.h"
#include "metrics/coordinator_metrics.h"

namespace ijepa::coord {

RunRegistry::RunRegistry(Storage& storage, metrics::CoordinatorMetrics* metrics, RegistryOptions options)
    : storage_(storage), metrics_(metrics), options_(std::move(options)) {
  const double t = now();
  for (v1::Run& run : storage_.load_runs()) {
    const std::string name = run.name();
    runs_[name].run = std::move(run);
  }
  for (v1::Worker& worker : storage_.load_workers()) {
    auto it = runs_.find(worker.run());
    if (it != runs_.end()) it->second.workers[worker.rank()] = std::move(worker);
  }
  for (auto& [name, entry] : runs_) restore(entry, t);
  publish_counts();
}

double RunRegistry::now() const {
  if (options_.clock) return options_.clock();
  return common::unix_now();
}

void RunRegistry::restore(RunEntry& entry, double now) {
  if (!is_active(entry.run.state())) {
    entry.series_removed = now - entry.run.ended_time() > options_.retention_s;
    if (entry.series_removed) return;
  }
  bool live = false;
  bool lost = false;
  for (auto& [rank, worker] : entry.workers) {
    live |= is_live(worker.state());
    lost |= worker.state() == v1::WORKER_STATE_LOST;
    if (is_active(entry.run.state()) && is_live(worker.state())) worker.set_last_heartbeat_time(now);
    if (metrics_) {
      metrics_->restore_worker_totals(worker.run(), rank, worker.data_wait_seconds_total(),
                                      worker.comm_wait_seconds_total());
    }
  }
  // Lost workers could not reach a coordinator that was down either: their grace period starts again, and so
  // does the wait for a run without a live worker.
  if (is_active(entry.run.state()) && !live) {
    entry.idle_since = now;
    if (lost) entry.abandoned_since = now;
  }
  publish_progress(entry);
}

void RunRegistry::record_event(RunEntry& e, int32_t rank, v1::EventType type, int64_t step, const std::string& message,
                               double value) {
  v1::Event event;
  event.set_run(e.run.name());
  event.set_rank(rank);
  event.set_type(type);
  event.set_time(now());
  event.set_step(step);
  event.set_value(value);
  event.set_message(message);
  pending_events_.push_back(event);
  // An ended run still takes events into its history (a rank's last checkpoint may arrive after another rank
  // failed the run), but once its series are gone, counting would bring them back for good.
  if (metrics_ && !e.series_removed) metrics_->count_event(event.run(), event_name(type));
  log::info(log::str("run ", event.run(), " rank ", rank, ": ", event_name(type), " at step ", step,
                     message.empty() ? "" : ": " + message));
}

void RunRegistry::mark_dirty(RunEntry& e, double now) {
  e.run.set_updated_time(now);
  dirty_runs_.insert(e.run.name());
  ++e.revision;
  changed_.notify_all();
}

void RunRegistry::mark_worker_dirty(const v1::Worker& w) { dirty_workers_.emplace(w.run(), w.rank()); }

RunRegistry::Batch RunRegistry::collect_dirty() {
  Batch batch;
  for (const std::string& name : dirty_runs_) {
    auto it = runs_.find(name);
    if (it != runs_.end()) batch.runs.push_back(it->second.run);
  }
  for (const auto& [name, rank] : dirty_workers_) {
    auto run = runs_.find(name);
    if (run == runs_.end()) continue;
    auto w = run->second.workers.find(rank);
    if (w != run->second.workers.end()) batch.workers.push_back(w->second);
  }
  dirty_runs_.clear();
  dirty_workers_.clear();
  batch.events.swap(pending_events_);
  return batch;
}

void RunRegistry::requeue_dirty(Batch&& batch) {
  for (const v1::Run& run : batch.runs) dirty_runs_.insert(run.name());
  for (const v1::Worker& w : batch.workers) dirty_workers_.emplace(w.run(), w.rank());
  // Ahead of any recorded since, so that the history keeps its order.
  pending_events_.insert(pending_events_.begin(), std::make_move_iterator(batch.events.begin()),
                         std::make_move_iterator(batch.events.end()));
}

void RunRegistry::write(Batch& batch) {
  Storage::Transaction transaction(storage_);
  for (const v1::Run& run : batch.runs) storage_.save_run(run);
  for (const v1::Worker& w : batch.workers) storage_.save_worker(w);
  for (v1::Event& event : batch.events) storage_.append_event(event);
  transaction.commit();
}

void RunRegistry::write_dirty() {
  Batch batch = collect_dirty();
  if (batch.empty()) return;
  std::lock_guard<std::mutex> storage_lock(storage_mutex_);
  try {
    write(batch);
  } catch (...) {
    requeue_dirty(std::move(batch));  // the transaction rolled back: the next write carries them
    throw;
  }
}

void RunRegistry::flush() {
  std::unique_lock<std::mutex> lock(mutex_);
  Batch batch = collect_dirty();
  if (batch.empty()) return;
  std::exception_ptr failure;
  {
    std::lock_guard<std::mutex> storage_lock(storage_mutex_);
    lock.unlock();  // heartbeats go on while SQLite writes; storage_mutex_ keeps the order of writes
    try {
      write(batch);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  if (!failure) return;
  lock.lock();                      // only once storage_mutex_ is released: mutex_ is always taken first
  requeue_dirty(std::move(batch));  // the transaction rolled back: the next write carries them
  std::rethrow_exception(failure);
}

RunRegistry::~RunRegistry() {
  try {
    flush();
  } catch (const std::exception& e) {
    log::error(log::str("coordinator: final database write failed: ", e.what()));
  }
}

void RunRegistry::publish_counts() {
  if (!metrics_) return;
  std::map<std::string, int64_t> runs;
  for (int s = v1::RunState_MIN + 1; s <= v1::RunState_MAX; ++s) runs[state_name(static_cast<v1::RunState>(s))] = 0;
  std::map<std::string, int64_t> workers{{"live", 0}, {"lost", 0}, {"finished", 0}};
  for (const auto& [name, e] : runs_) {
    ++runs[state_name(e.run.state())];
    if (!is_active(e.run.state())) continue;
    for (const auto& [rank, w] : e.workers) {
      ++workers[is_live(w.state()) ? "live" : w.state() == v1::WORKER_STATE_LOST ? "lost" : "finished"];
    }
  }
  metrics_->set_runs_by_state(runs);
  metrics_->set_workers_by_state(workers);
}

void RunRegistry::publish_progress(const RunEntry& e) {
  if (!metrics_ || e.series_removed) return;
  metrics_->set_run_progress(e.run.name(), to_step_report(e.run.latest()), e.run.images_per_second(),
                             e.run.live_workers());
}

}  // namespace ijepa::coord
