#include "train/report.h"

#include <sys/resource.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/files.h"

namespace ijepa::train {

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else if (s >= 60) {
    std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(text, sizeof text, "%llds", static_cast<long long>(s));
  }
  return text;
}

std::string format_progress(const ProgressLine& p) {
  const double percent =
      p.total_steps > 0 ? 100.0 * static_cast<double>(p.step) / static_cast<double>(p.total_steps) : 0;
  char text[512];
  std::snprintf(text, sizeof text,
                "[ep %lld/%lld step %lld/%lld %.1f%%] loss %.4f (epoch mean %.4f) masks %lld/%lld | lr %.3e wd %.3g "
                "ema %.5f | %.0f img/s %.1f ms/step data-wait %.2f ms | mem %.0f MiB | ETA %s",
                static_cast<long long>(p.epoch), static_cast<long long>(p.epochs), static_cast<long long>(p.step),
                static_cast<long long>(p.total_steps), percent, p.loss, p.epoch_mean_loss,
                static_cast<long long>(p.mask_a), static_cast<long long>(p.mask_b), p.lr, p.wd, p.momentum,
                p.images_per_second, p.step_ms, p.data_wait_ms, static_cast<double>(p.peak_rss_bytes) / (1 << 20),
                format_duration(p.eta_seconds).c_str());
  return text;
}

namespace {

const std::vector<std::pair<std::string, std::string>> kEvalFeatures = {
    {"target", "pretrained"}, {"random_init", "random init"}, {"raw_pixels", "raw pixels"}};
const std::vector<std::string> kEvalProtocols = {"linear", "knn"};

const EvalRow* find_row(const std::vector<EvalRow>& rows, const std::string& features, const std::string& protocol) {
  for (const auto& r : rows) {
    if (r.features == features && r.protocol == protocol) return &r;
  }
  return nullptr;
}

// {"epoch", "step", "train_samples", "test_samples", FEATURES: {PROTOCOL: {"top1", "seconds"}}} ("pooling" is
// the caller's)
nlohmann::json eval_json(const std::vector<EvalRow>& rows) {
  const EvalRow& last = rows.back();
  nlohmann::json j = {{"epoch", last.epoch},
                      {"step", last.step},
                      {"train_samples", last.train_samples},
                      {"test_samples", last.test_samples}};
  for (const auto& r : rows) j[r.features][r.protocol] = {{"top1", r.top1}, {"seconds", r.seconds}};
  return j;
}

}  // namespace

std::string format_eval_table(const std::vector<EvalRow>& rows) {
  if (rows.empty()) return "";
  const EvalRow& last = rows.back();
  std::string text = "evaluation at step " + std::to_string(last.step) + " (epoch " + std::to_string(last.epoch) +
                     "): top-1 on " + std::to_string(last.test_samples) + " test images, probes fitted on " +
                     std::to_string(last.train_samples) + " train images\n";
  char cell[64];
  std::snprintf(cell, sizeof cell, "  %-12s", "");
  text += cell;
  for (const auto& protocol : kEvalProtocols) {
    std::snprintf(cell, sizeof cell, " %8s", protocol.c_str());
    text += cell;
  }
  for (const auto& [features, label] : kEvalFeatures) {
    if (!find_row(rows, features, "linear") && !find_row(rows, features, "knn")) continue;
    std::snprintf(cell, sizeof cell, "\n  %-12s", label.c_str());
    text += cell;
    for (const auto& protocol : kEvalProtocols) {
      const EvalRow* r = find_row(rows, features, protocol);
      if (r) {
        std::snprintf(cell, sizeof cell, " %7.2f%%", 100 * r->top1);
      } else {
        std::snprintf(cell, sizeof cell, " %8s", "-");
      }
      text += cell;
    }
  }
  return text;
}

void write_summary(const std::string& path, const RunSummary& s) {
  nlohmann::json j = {
      {"steps", s.steps},
      {"epochs", s.epochs},
      {"last_loss", s.last_loss},
      {"images_per_second", s.images_per_second},
      {"world_size", s.world_size},
      {"encoder_sha256", s.encoder_sha256},
      {"target_encoder_sha256", s.target_encoder_sha256},
      {"exit_reason", s.exit_reason},
      {"wall_seconds", s.wall_seconds},
      {"data_wait_seconds", s.data_wait_seconds},
      {"communication_wait_seconds", s.communication_wait_seconds},
      {"skipped_samples", s.skipped_samples},
      {"peak_rss_bytes", s.peak_rss_bytes},
      {"device", s.device},
      {"dtype", s.dtype},
      {"last_checkpoint", s.last_checkpoint},
      {"run_folder", s.run_folder},
  };
  if (!s.eval.empty()) {
    j["eval"] = eval_json(s.eval);
    j["eval"]["pooling"] = s.eval_pooling;
  }
  common::write_file_atomic(path, j.dump(2) + "\n");
}

int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

}  // namespace ijepa::train
