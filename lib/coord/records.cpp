// Record helpers (see records.h).
#include "coord/records.h"

#include <algorithm>
#include <cctype>

namespace ijepa::coord {
namespace {

// "RUN_STATE_RUNNING" -> "running".
std::string lower_suffix(const std::string& enum_name, const std::string& prefix) {
  std::string name = enum_name.rfind(prefix, 0) == 0 ? enum_name.substr(prefix.size()) : enum_name;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return name;
}

}  // namespace

std::string state_name(v1::RunState state) { return lower_suffix(v1::RunState_Name(state), "RUN_STATE_"); }
std::string state_name(v1::WorkerState state) { return lower_suffix(v1::WorkerState_Name(state), "WORKER_STATE_"); }
std::string event_name(v1::EventType type) { return lower_suffix(v1::EventType_Name(type), "EVENT_TYPE_"); }

bool is_active(v1::RunState state) {
  return state == v1::RUN_STATE_RUNNING || state == v1::RUN_STATE_STALLED || state == v1::RUN_STATE_STOPPING;
}

bool is_live(v1::WorkerState state) {
  return state != v1::WORKER_STATE_LOST && state != v1::WORKER_STATE_FINISHED && state != v1::WORKER_STATE_UNSPECIFIED;
}

metrics::StepReport to_step_report(const v1::StepMetrics& m) {
  metrics::StepReport r;
  r.step = m.step();
  r.epoch = m.epoch();
  r.loss = m.loss();
  r.lr = m.lr();
  r.wd = m.wd();
  r.images_per_second = m.images_per_second();
  r.step_seconds = m.step_seconds();
  r.data_wait_seconds = m.data_wait_seconds();
  r.comm_wait_seconds = m.comm_wait_seconds();
  r.images = m.images();
  return r;
}

}  // namespace ijepa::coord
