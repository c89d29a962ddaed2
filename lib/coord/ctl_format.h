// How ijepa-ctl shows runs: JSON objects (the stable contract scripts read; snake_case keys, times in Unix
// seconds, states as lower-case names) and aligned text tables for people.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "ijepa/coordinator/v1/coordinator.pb.h"

namespace ijepa::coord {

namespace v1 = ::ijepa::coordinator::v1;

// {"name", "state", "world_size", "live_workers", "step", "epoch", "loss", "lr", "wd", "images_per_second",
//  "host", "created_time", "updated_time", "ended_time", "reason", "stop_requested", "stop_reason"}
nlohmann::json run_json(const v1::Run& run);
// {"rank", "host", "pid", "state", "step", "epoch", "last_heartbeat_time", "heartbeat_age_seconds",
//  "data_wait_seconds_total", "comm_wait_seconds_total"}
nlohmann::json worker_json(const v1::Worker& worker, double now);
// {"id", "time", "rank", "type", "step", "value", "message"}
nlohmann::json event_json(const v1::Event& event);
// {"run": ..., "workers": [...], "events": [...]}: `show` and each line of `watch`.
nlohmann::json detail_json(const v1::Run& run, const google::protobuf::RepeatedPtrField<v1::Worker>& workers,
                           const google::protobuf::RepeatedPtrField<v1::Event>& events, double now);

// NAME STATE WORKERS STEP EPOCH LOSS IMG/S UPDATED, one line per run.
std::string runs_table(const v1::ListRunsResponse& runs, double now);
// The run's fields, then its workers and events as tables.
std::string run_detail_text(const v1::GetRunResponse& detail, double now);
// One line of `watch`, then one line per new event.
std::string watch_text(const v1::WatchRunResponse& update, double now);

// "3s ago", "5m ago", "2h ago", "4d ago"; "-" for a zero time.
std::string age_text(double time, double now);
// Local "YYYY-MM-DD HH:MM:SS"; "-" for a zero time.
std::string time_text(double time);

}  // namespace ijepa::coord
