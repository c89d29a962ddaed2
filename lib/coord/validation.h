// Checks on everything a caller sends the coordinator. Each throws common::InputError with a message naming
// the field and the value, which the service turns into INVALID_ARGUMENT; the registry only ever sees values
// that passed. Limits are generous for real use and small enough that no request can exhaust the server.
#pragma once

#include <cstdint>
#include <string>

#include "ijepa/coordinator/v1/coordinator.pb.h"

namespace ijepa::coord {

inline constexpr size_t kMaxHostBytes = 255;
inline constexpr size_t kMaxTextBytes = 4096;       // reasons, event messages
inline constexpr size_t kMaxConfigBytes = 1 << 20;  // the resolved YAML config of a run
inline constexpr int32_t kMaxWorldSize = 65536;
inline constexpr int kMaxMetricsPerHeartbeat = 1024;
inline constexpr int kMaxEventsPerReport = 256;
inline constexpr int32_t kMaxListLimit = 10000;
inline constexpr int32_t kMaxEventsShown = 1000;

namespace v1 = ::ijepa::coordinator::v1;

// common::is_valid_run_name: 1..128 characters of [A-Za-z0-9._-], starting with a letter or digit.
void validate_run_name(const std::string& name, const std::string& field = "run name");
void validate_world_size(int32_t world_size);
void validate_rank(int32_t rank, int32_t world_size);
// Printable ASCII without spaces, at most kMaxHostBytes.
void validate_host(const std::string& host);
// A control character that text may not hold (tab, newline and carriage return may).
bool is_refused_in_text(char c);
// At most `max_bytes`; no character is_refused_in_text.
void validate_text(const std::string& text, const std::string& field, size_t max_bytes = kMaxTextBytes);

void validate(const v1::CreateRunRequest& request);
void validate(const v1::RegisterWorkerRequest& request);
void validate(const v1::HeartbeatRequest& request);
void validate(const v1::ReportEventsRequest& request);
void validate(const v1::FinishRunRequest& request);
void validate(const v1::StopRunRequest& request);
void validate(const v1::GetRunRequest& request);
void validate(const v1::ListRunsRequest& request);
void validate(const v1::StepMetrics& metrics, const std::string& field);

}  // namespace ijepa::coord
