// Conversions from CoordinatorClient's plain types (client.h) to the protobuf records it sends. Values the
// coordinator would refuse are made acceptable here (negative counts and non-finite times become 0, long text
// is clipped, bytes that are not UTF-8 become '?', control characters spaces), so one odd value never costs a whole
// batch of reports. Internal to lib/coord.
#pragma once

#include <cstdint>
#include <string>

#include "coord/client.h"
#include "ijepa/coordinator/v1/coordinator.pb.h"

namespace ijepa::coord {

namespace v1 = ::ijepa::coordinator::v1;

v1::WorkerState to_proto(WorkerState state);
v1::EventType to_proto(EventType type);
v1::RunOutcome to_proto(Outcome outcome);
// TIME: seconds since the Unix epoch. The loss passes unchanged: a NaN loss is news, not bad input.
v1::StepMetrics to_proto(const metrics::StepReport& report, double time);
v1::Event to_proto(EventType type, const std::string& message, int64_t step, double value, double time);

// TEXT as valid UTF-8 of at most MAX_BYTES, cut at a character boundary, each byte that begins no valid character
// as '?'. A proto3 string field must hold valid UTF-8: anything else fails the whole request at the coordinator
// (INTERNAL, before any validation), and exception texts and paths need not be UTF-8.
std::string valid_utf8(const std::string& text, size_t max_bytes);

// TEXT as the coordinator accepts messages and reasons: valid_utf8() within its limit, control characters (other
// than line breaks and tabs) as spaces.
std::string sendable_text(const std::string& text);

}  // namespace ijepa::coord
