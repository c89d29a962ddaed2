// Schedules against the reference's values for the released ViT-H/14 config.
#include "train/schedules.h"

#include <gtest/gtest.h>

#include "golden.h"

namespace ijepa::train {
namespace {

TEST(SchedulesGolden, ReleasedConfigValuesMatchTheReference) {
  const auto& g = ijepa::testing::golden()["schedules_in1k_vith14_ep300"];
  ScheduleConfig c;
  c.iterations_per_epoch = g["ipe"];
  c.epochs = g["epochs"];
  c.warmup_epochs = g["warmup_epochs"];
  c.start_lr = g["start_lr"];
  c.lr = g["lr"];
  c.final_lr = g["final_lr"];
  c.weight_decay = g["wd"];
  c.final_weight_decay = g["final_wd"];
  c.ema_start = g["ema"][0];
  c.ema_end = g["ema"][1];
  const Schedules s(c);
  EXPECT_EQ(s.total_steps(), 187500);
  for (const auto& v : g["values"]) {
    const int64_t it = v["iteration"];
    EXPECT_NEAR(s.lr(it), v["lr"].get<double>(), 1e-15) << it;
    EXPECT_NEAR(s.weight_decay(it), v["wd"].get<double>(), 1e-15) << it;
    EXPECT_NEAR(s.momentum(it), v["ema_momentum"].get<double>(), 1e-15) << it;
  }
}

TEST(Schedules, MomentumStaysFinalPastTheEnd) {
  ScheduleConfig c;
  c.iterations_per_epoch = 10;
  c.epochs = 2;
  const Schedules s(c);
  EXPECT_DOUBLE_EQ(s.momentum(1), 0.996);
  EXPECT_DOUBLE_EQ(s.momentum(21), 1.0);
  EXPECT_DOUBLE_EQ(s.momentum(500), 1.0);
}

}  // namespace
}  // namespace ijepa::train
