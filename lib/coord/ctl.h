// The commands of ijepa-ctl, as a library so that tests can drive them and the main stays thin.
//
// Each command prints its result to OUT (a table, or with `json` one JSON document; `watch --json` prints
// one document per line) and anything meant for people to ERR, and returns the process exit code: 0 done,
// 2 bad input (INVALID_ARGUMENT, NOT_FOUND), 1 any other failure (unreachable, UNAUTHENTICATED, ...).
#pragma once

#include <chrono>
#include <ostream>
#include <string>

#include "coord/channel.h"

namespace ijepa::coord {

struct CtlOptions {
  ChannelOptions channel;
  bool json = false;
  // Per call; watch: for the first update, and for the answer to each ping it sends every 10 s while the stream
  // is quiet, so that a coordinator that hangs or a network that goes away ends the watch (exit 1).
  std::chrono::milliseconds timeout{10000};
};

// The newest `limit` runs (0: the coordinator's default, 100); the table says when there are more.
int ctl_runs(const CtlOptions& options, bool active_only, int limit, std::ostream& out, std::ostream& err);
int ctl_show(const CtlOptions& options, const std::string& run, std::ostream& out, std::ostream& err);
// Follows the run until it ends (then returns 0) or the stream breaks.
int ctl_watch(const CtlOptions& options, const std::string& run, std::ostream& out, std::ostream& err);
int ctl_stop(const CtlOptions& options, const std::string& run, const std::string& reason, std::ostream& out,
             std::ostream& err);

}  // namespace ijepa::coord
