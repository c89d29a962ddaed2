#include "train/report.h"

#include <sys/resource.h>

#include <cstdio>
#include <nlohmann/json.hpp>

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
      {"skipped_samples", s.skipped_samples},
      {"peak_rss_bytes", s.peak_rss_bytes},
      {"device", s.device},
      {"dtype", s.dtype},
      {"last_checkpoint", s.last_checkpoint},
      {"run_folder", s.run_folder},
  };
  common::write_file_atomic(path, j.dump(2) + "\n");
}

int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

}  // namespace ijepa::train
