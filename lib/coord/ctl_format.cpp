// JSON and text rendering for ijepa-ctl.
#include "coord/ctl_format.h"

#include <fmt/format.h>

#include <cmath>
#include <ctime>

#include "coord/records.h"

namespace ijepa::coord {
namespace {

std::string number(double value, const char* format = "{:.4g}") {
  return std::isfinite(value) ? fmt::format(fmt::runtime(format), value) : fmt::format("{}", value);
}

std::string rank_text(int32_t rank) { return rank < 0 ? "-" : std::to_string(rank); }

}  // namespace

std::string age_text(double time, double now) {
  if (time <= 0.0) return "-";
  const double age = std::max(0.0, now - time);
  if (age < 120) return fmt::format("{:.0f}s ago", age);
  if (age < 7200) return fmt::format("{:.0f}m ago", age / 60);
  if (age < 172800) return fmt::format("{:.0f}h ago", age / 3600);
  return fmt::format("{:.0f}d ago", age / 86400);
}

std::string time_text(double time) {
  if (time <= 0.0) return "-";
  const std::time_t seconds = static_cast<std::time_t>(time);
  std::tm local{};
  localtime_r(&seconds, &local);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M:%S", &local);
  return buffer;
}

nlohmann::json run_json(const v1::Run& run) {
  const v1::StepMetrics& m = run.latest();
  return {{"name", run.name()},
          {"state", state_name(run.state())},
          {"world_size", run.world_size()},
          {"live_workers", run.live_workers()},
          {"step", m.step()},
          {"epoch", m.epoch()},
          {"loss", m.loss()},
          {"lr", m.lr()},
          {"wd", m.wd()},
          {"images_per_second", run.images_per_second()},
          {"host", run.host()},
          {"created_time", run.created_time()},
          {"updated_time", run.updated_time()},
          {"ended_time", run.ended_time()},
          {"reason", run.reason()},
          {"stop_requested", run.stop_requested()},
          {"stop_reason", run.stop_reason()}};
}

nlohmann::json worker_json(const v1::Worker& w, double now) {
  return {{"rank", w.rank()},
          {"host", w.host()},
          {"pid", w.pid()},
          {"state", state_name(w.state())},
          {"step", w.step()},
          {"epoch", w.epoch()},
          {"last_heartbeat_time", w.last_heartbeat_time()},
          {"heartbeat_age_seconds", std::max(0.0, now - w.last_heartbeat_time())},
          {"data_wait_seconds_total", w.data_wait_seconds_total()},
          {"comm_wait_seconds_total", w.comm_wait_seconds_total()}};
}

nlohmann::json event_json(const v1::Event& e) {
  return {{"id", e.id()},     {"time", e.time()},   {"rank", e.rank()},      {"type", event_name(e.type())},
          {"step", e.step()}, {"value", e.value()}, {"message", e.message()}};
}

nlohmann::json detail_json(const v1::Run& run, const google::protobuf::RepeatedPtrField<v1::Worker>& workers,
                           const google::protobuf::RepeatedPtrField<v1::Event>& events, double now) {
  nlohmann::json result{
      {"run", run_json(run)}, {"workers", nlohmann::json::array()}, {"events", nlohmann::json::array()}};
  for (const v1::Worker& w : workers) result["workers"].push_back(worker_json(w, now));
  for (const v1::Event& e : events) result["events"].push_back(event_json(e));
  return result;
}

std::string runs_table(const v1::ListRunsResponse& runs, double now) {
  std::string text = fmt::format("{:<28} {:<9} {:>7} {:>9} {:>5} {:>10} {:>9}  {}\n", "NAME", "STATE", "WORKERS",
                                 "STEP", "EPOCH", "LOSS", "IMG/S", "UPDATED");
  for (const v1::Run& run : runs.runs()) {
    text += fmt::format("{:<28} {:<9} {:>7} {:>9} {:>5} {:>10} {:>9}  {}\n", run.name(), state_name(run.state()),
                        fmt::format("{}/{}", run.live_workers(), run.world_size()), run.latest().step(),
                        run.latest().epoch(), number(run.latest().loss()), number(run.images_per_second(), "{:.1f}"),
                        age_text(run.updated_time(), now));
  }
  if (runs.total() > runs.runs_size()) {
    text += fmt::format("(the newest {} of {} runs; --limit N shows more)\n", runs.runs_size(), runs.total());
  }
  return text;
}

std::string run_detail_text(const v1::GetRunResponse& detail, double now) {
  const v1::Run& run = detail.run();
  const v1::StepMetrics& m = run.latest();
  std::string text = fmt::format("run       {}\n", run.name());
  text +=
      fmt::format("state     {}{}\n", state_name(run.state()), run.reason().empty() ? "" : " (" + run.reason() + ")");
  if (run.stop_requested()) text += fmt::format("stop      requested: {}\n", run.stop_reason());
  text += fmt::format("workers   {} live of {}\n", run.live_workers(), run.world_size());
  text += fmt::format("step      {} (epoch {})\n", m.step(), m.epoch());
  text += fmt::format("loss      {}  lr {}  wd {}\n", number(m.loss()), number(m.lr()), number(m.wd()));
  text += fmt::format("speed     {} images/s\n", number(run.images_per_second(), "{:.1f}"));
  text += fmt::format("created   {} on {}\n", time_text(run.created_time()), run.host());
  text += fmt::format("updated   {}\n", age_text(run.updated_time(), now));
  if (run.ended_time() > 0) text += fmt::format("ended     {}\n", time_text(run.ended_time()));
  text += fmt::format("\n{:>5} {:<20} {:>8} {:<13} {:>9} {:>10} {:>10} {:>10}\n", "RANK", "HOST", "PID", "STATE",
                      "STEP", "HEARTBEAT", "DATA-WAIT", "COMM-WAIT");
  for (const v1::Worker& w : detail.workers()) {
    text += fmt::format("{:>5} {:<20} {:>8} {:<13} {:>9} {:>10} {:>9.1f}s {:>9.1f}s\n", w.rank(), w.host(), w.pid(),
                        state_name(w.state()), w.step(), age_text(w.last_heartbeat_time(), now),
                        w.data_wait_seconds_total(), w.comm_wait_seconds_total());
  }
  text += fmt::format("\n{:<19} {:>4} {:<18} {:>9}  {}\n", "TIME", "RANK", "EVENT", "STEP", "MESSAGE");
  for (const v1::Event& e : detail.events()) {
    text += fmt::format("{:<19} {:>4} {:<18} {:>9}  {}\n", time_text(e.time()), rank_text(e.rank()),
                        event_name(e.type()), e.step(), e.message());
  }
  return text;
}

std::string watch_text(const v1::WatchRunResponse& update, double now) {
  const v1::Run& run = update.run();
  const v1::StepMetrics& m = run.latest();
  std::string text =
      fmt::format("{}  {:<9} step {} epoch {} loss {} {} img/s {}/{} live{}\n", time_text(now), state_name(run.state()),
                  m.step(), m.epoch(), number(m.loss()), number(run.images_per_second(), "{:.1f}"), run.live_workers(),
                  run.world_size(), run.reason().empty() ? "" : "  (" + run.reason() + ")");
  for (const v1::Event& e : update.events()) {
    text += fmt::format("{}  event {} rank {} step {}: {}\n", time_text(e.time()), event_name(e.type()),
                        rank_text(e.rank()), e.step(), e.message());
  }
  return text;
}

}  // namespace ijepa::coord
