// RunRegistry, part three: liveness from heartbeats. A worker silent past the heartbeat timeout is lost and
// stalls its run. A run is abandoned when no worker is live and either some are lost or none has been live for a
// heartbeat timeout (none registered, or only finished ones): it stalls too, a stopping one ends, and a stalled
// one is failed once the grace period (fail_lost_after_s) has passed, so that it ends, frees its name and leaves
// /metrics after retention like any ended run.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "common/log.h"
#include "coord/records.h"
#include "coord/run_registry.h"
#include "metrics/coordinator_metrics.h"

namespace ijepa::coord {
namespace {

std::string seconds_text(double seconds) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.1f s", seconds);
  return buffer;
}

// UTC, ISO 8601: "2024-05-01T12:00:00Z".
std::string utc_text(double time) {
  const std::time_t seconds = static_cast<std::time_t>(time);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

}  // namespace

void RunRegistry::tick() {
  std::lock_guard<std::mutex> lock(mutex_);
  const double t = now();
  bool counts_changed = false;
  std::vector<std::string> forgotten;
  for (auto& [name, e] : runs_) {
    if (is_active(e.run.state())) {
      counts_changed |= expire_workers(e, t);
      counts_changed |= expire_idle(e, t);
      counts_changed |= fail_if_abandoned(e, t);
      continue;
    }
    if (!e.series_removed && t - e.run.ended_time() > options_.retention_s) {
      if (metrics_) metrics_->remove_run(name);
      e.series_removed = true;
    }
    if (options_.forget_after_s > 0.0 && t - e.run.ended_time() > options_.forget_after_s) forgotten.push_back(name);
  }
  if (!forgotten.empty()) {
    forget(forgotten);
    counts_changed = true;
  }
  if (counts_changed) publish_counts();
}

// Ended runs past forget_after_s leave the database and memory with their workers, events and config, so that
// neither grows without bound. Their names are free again.
void RunRegistry::forget(const std::vector<std::string>& names) {
  {
    std::lock_guard<std::mutex> storage_lock(storage_mutex_);
    Storage::Transaction transaction(storage_);
    for (const std::string& name : names) storage_.delete_run(name);
    transaction.commit();
  }
  for (const std::string& name : names) {
    auto it = runs_.find(name);
    if (metrics_ && !it->second.series_removed) metrics_->remove_run(name);
    runs_.erase(it);
    // Nothing of it may be written again (an event of an ended run is still recorded).
    dirty_runs_.erase(name);
    for (auto w = dirty_workers_.begin(); w != dirty_workers_.end();)
      w = w->first == name ? dirty_workers_.erase(w) : ++w;
    pending_events_.erase(std::remove_if(pending_events_.begin(), pending_events_.end(),
                                         [&](const v1::Event& event) { return event.run() == name; }),
                          pending_events_.end());
    log::info(log::str("run ", name, " forgotten: ended more than ", seconds_text(options_.forget_after_s), " ago"));
  }
  changed_.notify_all();  // their watchers stop waiting
}

bool RunRegistry::expire_workers(RunEntry& e, double now) {
  std::vector<v1::Worker*> lost;
  for (auto& [rank, w] : e.workers) {
    const double age = now - w.last_heartbeat_time();
    if (metrics_ && !e.series_removed && (is_live(w.state()) || w.state() == v1::WORKER_STATE_LOST)) {
      metrics_->set_heartbeat_age(e.run.name(), rank, age);
    }
    if (is_live(w.state()) && age > options_.heartbeat_timeout_s) lost.push_back(&w);
  }
  if (lost.empty()) return false;
  for (v1::Worker* w : lost) {
    w->set_state(v1::WORKER_STATE_LOST);
    mark_worker_dirty(*w);
    record_event(e, w->rank(), v1::EVENT_TYPE_WORKER_LOST, w->step(),
                 "no heartbeat for " + seconds_text(now - w->last_heartbeat_time()) + " (timeout " +
                     seconds_text(options_.heartbeat_timeout_s) + ")");
  }
  refresh_run(e, now);
  mark_dirty(e, now);
  write_dirty();
  return true;
}

// Only time passes here, no worker changed: a run without a live worker becomes abandoned once that lasted a
// heartbeat timeout.
bool RunRegistry::expire_idle(RunEntry& e, double now) {
  if (e.abandoned_since > 0.0 || e.idle_since <= 0.0 || now - e.idle_since <= options_.heartbeat_timeout_s) {
    return false;
  }
  refresh_run(e, now);
  mark_dirty(e, now);
  write_dirty();
  return true;
}

bool RunRegistry::fail_if_abandoned(RunEntry& e, double now) {
  if (e.run.state() != v1::RUN_STATE_STALLED || e.abandoned_since <= 0.0 ||
      now - e.abandoned_since <= options_.fail_lost_after_s) {
    return false;
  }
  end_run(e, v1::RUN_STATE_FAILED,
          abandoned_reason(e, now) + "; none came back within " + seconds_text(options_.fail_lost_after_s), now);
  mark_dirty(e, now);
  write_dirty();
  return true;
}

std::string RunRegistry::abandoned_reason(const RunEntry& e, double now) const {
  double last_heartbeat = 0.0;
  for (const auto& [rank, w] : e.workers) {
    if (w.state() == v1::WORKER_STATE_LOST) last_heartbeat = std::max(last_heartbeat, w.last_heartbeat_time());
  }
  if (last_heartbeat > 0.0) {
    return "all workers lost: no heartbeat since " + utc_text(last_heartbeat) + " (" +
           seconds_text(now - last_heartbeat) + " ago)";
  }
  return idle_text(e) + " since " + utc_text(e.idle_since) + " (" + seconds_text(now - e.idle_since) + " ago)";
}

std::string RunRegistry::idle_text(const RunEntry& e) {
  return e.workers.empty() ? "no worker registered" : "no live worker";
}

bool RunRegistry::track_abandonment(RunEntry& e, int live, int lost, double now) const {
  if (live > 0) {
    e.idle_since = 0.0;
  } else if (e.idle_since <= 0.0) {
    e.idle_since = now;
  }
  const bool abandoned = live == 0 && (lost > 0 || now - e.idle_since > options_.heartbeat_timeout_s);
  if (!abandoned) {
    e.abandoned_since = 0.0;
  } else if (e.abandoned_since <= 0.0) {
    e.abandoned_since = now;
  }
  return abandoned;
}

void RunRegistry::refresh_run(RunEntry& e, double now) {
  int live = 0;
  int lost = 0;
  double images_per_second = 0.0;
  const v1::Worker* first_lost = nullptr;
  for (const auto& [rank, w] : e.workers) {
    if (is_live(w.state())) {
      ++live;
      images_per_second += w.latest().images_per_second();
    } else if (w.state() == v1::WORKER_STATE_LOST) {
      ++lost;
      if (!first_lost) first_lost = &w;
    }
  }
  e.run.set_live_workers(live);
  e.run.set_images_per_second(images_per_second);
  const bool abandoned = track_abandonment(e, live, lost, now);
  const v1::RunState state = e.run.state();
  if (state == v1::RUN_STATE_RUNNING && first_lost) {
    e.run.set_state(v1::RUN_STATE_STALLED);
    e.run.set_reason("rank " + std::to_string(first_lost->rank()) + " lost: no heartbeat for " +
                     seconds_text(now - first_lost->last_heartbeat_time()) + " (timeout " +
                     seconds_text(options_.heartbeat_timeout_s) + ")");
  } else if (state == v1::RUN_STATE_RUNNING && abandoned) {
    e.run.set_state(v1::RUN_STATE_STALLED);
    e.run.set_reason(idle_text(e) + " for " + seconds_text(now - e.idle_since) + " (timeout " +
                     seconds_text(options_.heartbeat_timeout_s) + ")");
  } else if (state == v1::RUN_STATE_STALLED && lost == 0 && !abandoned) {
    e.run.set_state(v1::RUN_STATE_RUNNING);
    e.run.clear_reason();
  } else if (state == v1::RUN_STATE_STOPPING && abandoned) {
    end_run(e, v1::RUN_STATE_STOPPED,
            lost > 0 ? "stop requested; workers went silent without finishing" : "stop requested; no live worker left",
            now);
  }
}

}  // namespace ijepa::coord
