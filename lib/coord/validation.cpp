// Request validation (see validation.h).
#include "coord/validation.h"

#include <cctype>
#include <cmath>

#include "common/checks.h"
#include "common/errors.h"

namespace ijepa::coord {
namespace {

[[noreturn]] void fail(const std::string& message) { throw common::InputError(message); }

// Quotes a value for an error message, cut short so a huge value cannot flood logs.
std::string quoted(const std::string& value) {
  constexpr size_t kShown = 64;
  std::string shown = value.size() > kShown ? value.substr(0, kShown) + "..." : value;
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return "'" + shown + "'";
}

void validate_seconds(double value, const std::string& field) {
  if (!std::isfinite(value) || value < 0.0 || value > 1e9) fail(field + " must be finite and >= 0");
}

// Unix times: finite, not before 1970, not absurdly far ahead (year ~5000).
void validate_time(double value, const std::string& field) {
  if (!std::isfinite(value) || value < 0.0 || value > 1e11) fail(field + " must be a Unix time in seconds");
}

void validate_worker_state(v1::WorkerState state) {
  // LOST is the coordinator's verdict, never a worker's report.
  if (!v1::WorkerState_IsValid(state) || state == v1::WORKER_STATE_UNSPECIFIED || state == v1::WORKER_STATE_LOST) {
    fail("worker state " + std::to_string(state) + " is not one a worker can report");
  }
}

bool reportable(v1::EventType type) {
  switch (type) {
    case v1::EVENT_TYPE_NAN_LOSS:
    case v1::EVENT_TYPE_STALL:
    case v1::EVENT_TYPE_CHECKPOINT_WRITTEN:
    case v1::EVENT_TYPE_EVALUATION_RESULT:
    case v1::EVENT_TYPE_MESSAGE:
      return true;
    default:
      return false;
  }
}

}  // namespace

void validate_run_name(const std::string& name, const std::string& field) {
  if (!common::is_valid_run_name(name)) fail(field + " " + quoted(name) + " " + common::kRunNameRule);
}

void validate_world_size(int32_t world_size) {
  if (world_size < 1 || world_size > kMaxWorldSize) {
    fail("world size " + std::to_string(world_size) + " must be in 1.." + std::to_string(kMaxWorldSize));
  }
}

void validate_rank(int32_t rank, int32_t world_size) {
  if (rank < 0 || rank >= world_size) {
    fail("rank " + std::to_string(rank) + " must be in 0.." + std::to_string(world_size - 1));
  }
}

void validate_host(const std::string& host) {
  if (host.size() > kMaxHostBytes) fail("host is longer than " + std::to_string(kMaxHostBytes) + " bytes");
  for (char c : host) {
    if (c <= 0x20 || c >= 0x7f) fail("host " + quoted(host) + " must be printable ASCII without spaces");
  }
}

bool is_refused_in_text(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\n' && c != '\t' && c != '\r') || u == 0x7f;
}

void validate_text(const std::string& text, const std::string& field, size_t max_bytes) {
  if (text.size() > max_bytes) fail(field + " is longer than " + std::to_string(max_bytes) + " bytes");
  for (char c : text) {
    if (is_refused_in_text(c)) fail(field + " contains control characters");
  }
}

void validate(const v1::StepMetrics& m, const std::string& field) {
  if (m.step() < 0) fail(field + ".step must be >= 0");
  if (m.epoch() < 0) fail(field + ".epoch must be >= 0");
  if (m.images() < 0) fail(field + ".images must be >= 0");
  if (!std::isfinite(m.lr()) || !std::isfinite(m.wd())) fail(field + ".lr and .wd must be finite");
  validate_seconds(m.images_per_second(), field + ".images_per_second");
  validate_seconds(m.step_seconds(), field + ".step_seconds");
  validate_seconds(m.data_wait_seconds(), field + ".data_wait_seconds");
  validate_seconds(m.comm_wait_seconds(), field + ".comm_wait_seconds");
  validate_time(m.time(), field + ".time");
}

void validate(const v1::CreateRunRequest& r) {
  validate_run_name(r.name());
  validate_world_size(r.world_size());
  validate_rank(r.rank(), r.world_size());
  validate_host(r.host());
  validate_text(r.config_text(), "config_text", kMaxConfigBytes);
}

void validate(const v1::RegisterWorkerRequest& r) {
  validate_run_name(r.run());
  validate_rank(r.rank(), kMaxWorldSize);
  validate_host(r.host());
  if (r.pid() < 0) fail("pid must be >= 0");
}

void validate(const v1::HeartbeatRequest& r) {
  validate_run_name(r.run());
  validate_rank(r.rank(), kMaxWorldSize);
  validate_worker_state(r.state());
  if (r.step() < 0 || r.epoch() < 0) fail("step and epoch must be >= 0");
  if (r.metrics_size() > kMaxMetricsPerHeartbeat) {
    fail("a heartbeat carries at most " + std::to_string(kMaxMetricsPerHeartbeat) + " step metrics");
  }
  for (int i = 0; i < r.metrics_size(); ++i) validate(r.metrics(i), "metrics[" + std::to_string(i) + "]");
}

void validate(const v1::ReportEventsRequest& r) {
  validate_run_name(r.run());
  validate_rank(r.rank(), kMaxWorldSize);
  if (r.events_size() > kMaxEventsPerReport) {
    fail("a report carries at most " + std::to_string(kMaxEventsPerReport) + " events");
  }
  for (int i = 0; i < r.events_size(); ++i) {
    const v1::Event& e = r.events(i);
    const std::string field = "events[" + std::to_string(i) + "]";
    if (!reportable(e.type())) fail(field + ".type " + std::to_string(e.type()) + " is not one a worker can report");
    if (e.step() < 0) fail(field + ".step must be >= 0");
    if (!std::isfinite(e.value())) fail(field + ".value must be finite");
    validate_time(e.time(), field + ".time");
    validate_text(e.message(), field + ".message");
  }
}

void validate(const v1::FinishRunRequest& r) {
  validate_run_name(r.run());
  validate_rank(r.rank(), kMaxWorldSize);
  if (!v1::RunOutcome_IsValid(r.outcome()) || r.outcome() == v1::RUN_OUTCOME_UNSPECIFIED) {
    fail("outcome " + std::to_string(r.outcome()) + " is not finished, stopped or failed");
  }
  validate_text(r.reason(), "reason");
  if (r.step() < 0) fail("step must be >= 0");
}

void validate(const v1::StopRunRequest& r) {
  validate_run_name(r.name());
  validate_text(r.reason(), "reason");
}

void validate(const v1::GetRunRequest& r) {
  validate_run_name(r.name());
  if (r.max_events() < 0 || r.max_events() > kMaxEventsShown) {
    fail("max_events must be in 0.." + std::to_string(kMaxEventsShown));
  }
}

void validate(const v1::ListRunsRequest& r) {
  if (r.limit() < 0 || r.limit() > kMaxListLimit) fail("limit must be in 0.." + std::to_string(kMaxListLimit));
}

}  // namespace ijepa::coord
