#include "train/schedules.h"

#include <algorithm>
#include <cmath>

namespace ijepa::train {

ScheduleConfig golden_schedule(int64_t iterations_per_epoch, int64_t epochs) {
  ScheduleConfig c;
  c.iterations_per_epoch = iterations_per_epoch;
  c.epochs = epochs;
  c.warmup_epochs = 1;
  c.start_lr = 2e-4;
  c.lr = 1e-3;
  c.final_lr = 1e-6;
  c.weight_decay = 0.04;
  c.final_weight_decay = 0.4;
  return c;
}

// Every expression keeps the reference's operation order, so values agree to the last bit.
Schedules::Schedules(const ScheduleConfig& config)
    : config_(config),
      total_steps_(static_cast<int64_t>(config.ipe_scale * static_cast<double>(config.epochs) *
                                        static_cast<double>(config.iterations_per_epoch))),
      warmup_steps_(static_cast<int64_t>(config.warmup_epochs * static_cast<double>(config.iterations_per_epoch))) {}

double Schedules::lr(int64_t s) const {
  const auto step = static_cast<double>(s);
  if (s < warmup_steps_) {
    const double progress = step / static_cast<double>(std::max<int64_t>(1, warmup_steps_));
    return config_.start_lr + progress * (config_.lr - config_.start_lr);
  }
  const int64_t t_max = total_steps_ - warmup_steps_;
  const double progress =
      (step - static_cast<double>(warmup_steps_)) / static_cast<double>(std::max<int64_t>(1, t_max));
  return std::max(config_.final_lr,
                  config_.final_lr + (config_.lr - config_.final_lr) * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

double Schedules::weight_decay(int64_t s) const {
  const double progress = static_cast<double>(s) / static_cast<double>(total_steps_);
  const double wd = config_.final_weight_decay +
                    (config_.weight_decay - config_.final_weight_decay) * 0.5 * (1.0 + std::cos(M_PI * progress));
  return config_.final_weight_decay <= config_.weight_decay ? std::max(config_.final_weight_decay, wd)
                                                            : std::min(config_.final_weight_decay, wd);
}

double Schedules::momentum(int64_t s) const {
  // The reference divides by the float ipe*epochs*ipe_scale and stops after total_steps+1 values; past the end
  // (only reachable beyond the configured epochs) the momentum stays at its final value.
  const double span = static_cast<double>(config_.iterations_per_epoch * config_.epochs) * config_.ipe_scale;
  const double i = static_cast<double>(std::min(s - 1, total_steps_));
  return config_.ema_start + i * (config_.ema_end - config_.ema_start) / span;
}

}  // namespace ijepa::train
