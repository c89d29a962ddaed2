#include "eval/progress.h"

#include <unistd.h>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace ijepa::eval {

namespace {
constexpr int kBarWidth = 30;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);
}  // namespace

ProgressBar::ProgressBar(std::ostream& out) : out_(out), terminal_(&out == &std::cerr && isatty(STDERR_FILENO)) {}

void ProgressBar::update(const std::string& stage, int64_t done, int64_t total) {
  const auto now = Clock::now();
  if (stage != stage_) {
    stage_ = stage;
    stage_start_ = now;
    last_decile_ = -1;
  }
  const bool last = done >= total;
  const double fraction = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  const auto decile = static_cast<int64_t>(fraction * 10);
  if (last && last_decile_ == 10) return;  // a finished stage is drawn once
  if (!last && (terminal_ ? now - last_draw_ < kRedrawInterval : decile == last_decile_)) return;
  last_draw_ = now;
  last_decile_ = last ? 10 : decile;

  const double seconds = std::chrono::duration<double>(now - stage_start_).count();
  const int filled = static_cast<int>(fraction * kBarWidth);
  std::ostringstream line;  // formatted apart so that the stream's own flags stay untouched
  line << (terminal_ ? "\r" : "") << std::left << std::setw(16) << stage << " [" << std::string(filled, '=')
       << (filled < kBarWidth ? ">" : "") << std::string(kBarWidth - std::min(filled + 1, kBarWidth), ' ') << "] "
       << done << "/" << total << std::fixed << std::setprecision(1) << " " << seconds << "s";
  if (done > 0 && !last)
    line << " eta " << seconds * static_cast<double>(total - done) / static_cast<double>(done) << "s";
  line << (terminal_ ? (last ? "\n" : "\033[K") : "\n");
  out_ << line.str() << std::flush;
}

}  // namespace ijepa::eval
