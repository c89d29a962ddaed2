// Client record conversions (see client_records.h).
#include "coord/client_records.h"

#include <algorithm>
#include <cmath>

#include "coord/validation.h"

namespace ijepa::coord {
namespace {

double finite_or_zero(double value) { return std::isfinite(value) ? value : 0.0; }

// The length of the UTF-8 character at TEXT[I], or 0 when the bytes there are none. Strict as protobuf's check is:
// overlong forms, surrogates and code points past U+10FFFF are refused.
size_t utf8_length(const std::string& text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80;  // the range of the second byte
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // past U+10FFFF
  } else {
    return 0;
  }
  if (i + length > text.size() || byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return length;
}
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

std::string valid_utf8(const std::string& text, size_t max_bytes) {
  std::string valid;
  valid.reserve(std::min(text.size(), max_bytes));
  for (size_t i = 0; i < text.size();) {
    const size_t length = utf8_length(text, i);
    const size_t kept = length > 0 ? length : 1;
    if (valid.size() + kept > max_bytes) break;
    if (length > 0) {
      valid.append(text, i, length);
    } else {
      valid += '?';
    }
    i += kept;
  }
  return valid;
}

std::string sendable_text(const std::string& text) {
  std::string sendable = valid_utf8(text, kMaxTextBytes);
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
