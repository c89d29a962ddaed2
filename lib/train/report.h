// What a run tells people: the rank-0 console line and summary.json. No LibTorch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/csv_log.h"

namespace ijepa::train {

struct ProgressLine {
  int64_t epoch = 0, epochs = 0;  // 1-based epoch
  int64_t step = 0, total_steps = 0;
  double loss = 0, epoch_mean_loss = 0;
  int64_t mask_a = 0, mask_b = 0;
  double lr = 0, wd = 0, momentum = 0;
  double images_per_second = 0;  // all ranks
  double step_ms = 0, data_wait_ms = 0;
  double eta_seconds = 0;
  int64_t peak_rss_bytes = 0;
};

std::string format_progress(const ProgressLine& p);

// "1h02m", "3m05s", "42s".
std::string format_duration(double seconds);

struct RunSummary {
  int64_t steps = 0;
  double epochs = 0;  // completed, fractional
  double last_loss = 0;
  double images_per_second = 0;
  int64_t world_size = 1;
  std::string encoder_sha256, target_encoder_sha256;
  std::string exit_reason;
  // Beyond the contract:
  double wall_seconds = 0;
  double data_wait_seconds = 0;
  double communication_wait_seconds = 0;  // this rank's waits for the gradient all-reduce after backward
  int64_t skipped_samples = 0;
  int64_t peak_rss_bytes = 0;
  std::string device, dtype, last_checkpoint, run_folder;
  // The run's last evaluation, one row per features and protocol; summary.json's "eval" object when any.
  std::vector<EvalRow> eval;
  std::string eval_pooling;  // how the encoders' tokens became features (eval.pooling): the object's "pooling"
};

// The last evaluation as a table, one line per features (pretrained, random init, raw pixels) and a column per
// protocol (top-1 in percent), under a line saying what was probed.
std::string format_eval_table(const std::vector<EvalRow>& rows);

// Writes summary.json atomically.
void write_summary(const std::string& path, const RunSummary& s);

// Peak resident memory of this process (Linux ru_maxrss).
int64_t peak_rss_bytes();

}  // namespace ijepa::train
