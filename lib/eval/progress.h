// Progress reporting for the evaluation stages: a callback the library calls, and a bar that draws it on stderr.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

namespace ijepa::eval {

// Called as work advances: `stage` names it ("features train", "linear probe", ...), done <= total. It may throw
// to abandon the work (the trainer does when a stop is asked for): the exception leaves the library call, which
// leaves the encoder's mode and the data loader's threads as they were.
using ProgressFn = std::function<void(const std::string& stage, int64_t done, int64_t total)>;

// A one-line bar, redrawn in place on a terminal; elsewhere (a log file) a line every 10% of each stage.
// Redraws at most 10 times a second; the last update of a stage always shows.
class ProgressBar {
 public:
  explicit ProgressBar(std::ostream& out);
  void update(const std::string& stage, int64_t done, int64_t total);
  ProgressFn callback() {
    return [this](const std::string& stage, int64_t done, int64_t total) { update(stage, done, total); };
  }

 private:
  using Clock = std::chrono::steady_clock;

  std::ostream& out_;
  bool terminal_;
  std::string stage_;
  Clock::time_point stage_start_;
  Clock::time_point last_draw_;
  int64_t last_decile_ = -1;
};

}  // namespace ijepa::eval
