#include "train/op_profile.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <vector>

namespace ijepa::train {

namespace {

namespace profiler = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

const std::set<ActivityType> kActivities{ActivityType::CPU};

struct OpTotals {
  int64_t calls = 0;
  double self_ns = 0, inclusive_ns = 0;
};

struct Span {
  uint64_t start, end;
  std::string name;
};

// Self time = an op's duration less that of the ops it called directly (nesting per thread, by time).
std::map<std::string, OpTotals> totals_by_op(const std::vector<profiler::KinetoEvent>& events) {
  std::map<uint64_t, std::vector<Span>> by_thread;
  for (const auto& e : events) {
    if (e.deviceType() != c10::DeviceType::CPU || e.isAsync()) continue;
    by_thread[e.startThreadId()].push_back({e.startNs(), e.endNs(), e.name()});
  }
  std::map<std::string, OpTotals> totals;
  for (auto& [thread, spans] : by_thread) {
    std::sort(spans.begin(), spans.end(),
              [](const Span& a, const Span& b) { return a.start != b.start ? a.start < b.start : a.end > b.end; });
    std::vector<std::pair<const Span*, double>> open;  // span, its children's time so far
    auto close = [&](std::size_t keep) {
      while (open.size() > keep) {
        const auto [span, children] = open.back();
        open.pop_back();
        const double duration = static_cast<double>(span->end - span->start);
        auto& t = totals[span->name];
        t.calls += 1;
        t.inclusive_ns += duration;
        t.self_ns += duration - children;
        if (!open.empty()) open.back().second += duration;
      }
    };
    for (const auto& s : spans) {
      std::size_t keep = open.size();
      while (keep > 0 && open[keep - 1].first->end <= s.start) --keep;
      close(keep);
      open.emplace_back(&s, 0.0);
    }
    close(0);
  }
  return totals;
}

}  // namespace

OpProfile::OpProfile(bool with_shapes) {
  const ProfilerConfig config(ProfilerState::KINETO, /*report_input_shapes=*/with_shapes);
  profiler::prepareProfiler(config, kActivities);
  profiler::enableProfiler(config, kActivities);
}

OpProfile::~OpProfile() {
  if (recording_) profiler::disableProfiler();
}

std::string OpProfile::finish(const std::string& trace_path, int steps, std::size_t top) {
  recording_ = false;
  auto result = profiler::disableProfiler();
  if (!trace_path.empty()) result->save(trace_path);
  const auto totals = totals_by_op(result->events());
  std::vector<std::pair<std::string, OpTotals>> rows(totals.begin(), totals.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.self_ns > b.second.self_ns; });
  double all_self = 0;
  for (const auto& [name, t] : rows) all_self += t.self_ns;
  std::string table =
      "op                                              calls/step   self ms/step  share  incl ms/step\n";
  char line[256];
  for (std::size_t i = 0; i < std::min(top, rows.size()); ++i) {
    const auto& [name, t] = rows[i];
    std::snprintf(line, sizeof line, "%-48.48s %10.1f %14.2f %5.1f%% %13.2f\n", name.c_str(),
                  static_cast<double>(t.calls) / steps, t.self_ns / 1e6 / steps, 100.0 * t.self_ns / all_self,
                  t.inclusive_ns / 1e6 / steps);
    table += line;
  }
  std::snprintf(line, sizeof line, "all ops: %.2f ms/step of self time\n", all_self / 1e6 / steps);
  return table + line;
}

}  // namespace ijepa::train
