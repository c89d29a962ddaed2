// Helpers on the coordinator's protobuf records: the lower-case names of states and events used in metric
// labels, logs and ijepa-ctl output ("running", "lost", "checkpoint_written"), the state predicates, and the
// conversion of a StepMetrics record to the metrics library's StepReport.
#pragma once

#include <string>

#include "ijepa/coordinator/v1/coordinator.pb.h"
#include "metrics/step_report.h"

namespace ijepa::coord {

namespace v1 = ::ijepa::coordinator::v1;

std::string state_name(v1::RunState state);
std::string state_name(v1::WorkerState state);
std::string event_name(v1::EventType type);

// Running, stalled or stopping: not yet ended.
bool is_active(v1::RunState state);
// Reporting (starting to stopping): neither lost nor finished.
bool is_live(v1::WorkerState state);

metrics::StepReport to_step_report(const v1::StepMetrics& metrics);

}  // namespace ijepa::coord
