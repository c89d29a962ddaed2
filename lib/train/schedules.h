// The reference's schedules as closed-form functions of the 1-based iteration s (schedules step BEFORE the
// forward pass, so the first training step uses s = 1). Being pure functions of s, they resume exactly.
#pragma once

#include <cstdint>

namespace ijepa::train {

struct ScheduleConfig {
  int64_t iterations_per_epoch = 1;
  int64_t epochs = 1;
  double ipe_scale = 1.0;
  double warmup_epochs = 0;
  double start_lr = 0, lr = 0, final_lr = 0;
  double weight_decay = 0, final_weight_decay = 0;
  double ema_start = 0.996, ema_end = 1.0;
};

// The schedule of the reference's golden runs (ijepa_golden.json), which the step benchmark uses too: one warm-up
// epoch from lr 2e-4 to 1e-3, cosine to 1e-6; weight decay from 0.04 to 0.4.
ScheduleConfig golden_schedule(int64_t iterations_per_epoch, int64_t epochs);

class Schedules {
 public:
  explicit Schedules(const ScheduleConfig& config);

  // Linear warmup from start_lr to lr over int(warmup*ipe) steps, then cosine to final_lr.
  double lr(int64_t s) const;
  // Cosine-shaped increase from weight_decay to final_weight_decay over int(ipe_scale*epochs*ipe) steps.
  double weight_decay(int64_t s) const;
  // EMA momentum, linear from ema_start; the reference's generator yields value s-1 at step s.
  double momentum(int64_t s) const;

  int64_t total_steps() const { return total_steps_; }
  int64_t warmup_steps() const { return warmup_steps_; }

 private:
  ScheduleConfig config_;
  int64_t total_steps_;
  int64_t warmup_steps_;
};

}  // namespace ijepa::train
