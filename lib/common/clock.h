// Time in seconds as doubles: elapsed time and deadlines on the monotonic clock (a config's timeout_s becomes a
// deadline), and wall-clock timestamps; one place, so that every timer in the project measures the same way.
#pragma once

#include <chrono>

namespace ijepa::common {

using Clock = std::chrono::steady_clock;

// Seconds from `start` to now.
inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// `seconds` as the clock's duration, for deadlines (Clock::now() + to_duration(timeout_s)).
inline Clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Seconds since the Unix epoch on the system clock: timestamps that other processes and machines read.
inline double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace ijepa::common
