// Client record conversions (see client_records.h).
#include "coord/client_records.h"

#include <algorithm>
#include <cmath>

#include "coord/validation.h"

namespace ijepa::coord {
namespace {

double finite_or_zero(double value) { return std::isfinite(value) ? value : 0.0; }
double seconds_or_zero(double value) { return std::isfinite(value) && value > 0.0 && value < 1e9 ? value : 0.0; }

}  // namespace

v1::WorkerState to_proto(WorkerState state) {
  switch (state) {
    case WorkerState::kStarting:
      return v1::WORKER_STATE_STARTING;
    case WorkerState::kTraining:
      return v1::WORKER_STATE_TRAINING;
    case WorkerState::kCheckpointing:
      return v1::WORKER_STATE_CHECKPOINTING;
    case WorkerState::kEvaluating:
      return v1::WORKER_STATE_EVALUATING;
    case WorkerState::kStopping:
      return v1::WORKER_STATE_STOPPING;
  }
  return v1::WORKER_STATE_TRAINING;
}

v1::EventType to_proto(EventType type) {
  switch (type) {
    case EventType::kNanLoss:
      return v1::EVENT_TYPE_NAN_LOSS;
    case EventType::kStall:
      return v1::EVENT_TYPE_STALL;
    case EventType::kCheckpointWritten:
      return v1::EVENT_TYPE_CHECKPOINT_WRITTEN;
    case EventType::kEvaluationResult:
      return v1::EVENT_TYPE_EVALUATION_RESULT;
    case EventType::kMessage:
      return v1::EVENT_TYPE_MESSAGE;
  }
  return v1::EVENT_TYPE_MESSAGE;
}

v1::RunOutcome to_proto(Outcome outcome) {
  switch (outcome) {
    case Outcome::kFinished:
      return v1::RUN_OUTCOME_FINISHED;
    case Outcome::kStopped:
      return v1::RUN_OUTCOME_STOPPED;
    case Outcome::kFailed:
      return v1::RUN_OUTCOME_FAILED;
  }
  return v1::RUN_OUTCOME_FAILED;
}

v1::StepMetrics to_proto(const metrics::StepReport& r, double time) {
  v1::StepMetrics m;
  m.set_step(std::max<int64_t>(0, r.step));
  m.set_epoch(std::max<int64_t>(0, r.epoch));
  m.set_loss(r.loss);
  m.set_lr(finite_or_zero(r.lr));
  m.set_wd(finite_or_zero(r.wd));
  m.set_images_per_second(seconds_or_zero(r.images_per_second));
  m.set_step_seconds(seconds_or_zero(r.step_seconds));
  m.set_data_wait_seconds(seconds_or_zero(r.data_wait_seconds));
  m.set_comm_wait_seconds(seconds_or_zero(r.comm_wait_seconds));
  m.set_images(std::max<int64_t>(0, r.images));
  m.set_time(time);
  return m;
}

std::string sendable_text(const std::string& text) {
  std::string sendable = text.substr(0, kMaxTextBytes);
  std::replace_if(sendable.begin(), sendable.end(), is_refused_in_text, ' ');
  return sendable;
}

v1::Event to_proto(EventType type, const std::string& message, int64_t step, double value, double time) {
  v1::Event event;
  event.set_type(to_proto(type));
  event.set_message(sendable_text(message));
  event.set_step(std::max<int64_t>(0, step));
  event.set_value(finite_or_zero(value));
  event.set_time(time);
  return event;
}

}  // namespace ijepa::coord
