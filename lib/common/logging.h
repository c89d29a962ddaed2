// Console logging (spdlog to stderr) with the rank in every line; call once per process.
#pragma once

namespace ijepa::common {

// Pattern "[time] [rN] level: message". Ranks other than 0 log warnings and errors only unless verbose.
void init_logging(int rank, bool verbose = false);

}  // namespace ijepa::common
