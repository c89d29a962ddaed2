// The per-rank CSV log, {write_tag}_r{rank}.csv: the reference's columns first (epoch, itr, loss, mask-A,
// mask-B, time (ms)), then step, lr, wd, momentum, images/s, step ms and data-wait ms. Rank 0's evaluations go
// to a file of their own, {write_tag}_eval.csv, so the step log keeps the reference's shape. No LibTorch here.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace ijepa::train {

struct CsvRow {
  int64_t epoch = 0;  // 1-based, as the reference writes it
  int64_t itr = 0;    // batch index in the epoch
  double loss = 0;
  int64_t mask_a = 0;  // context tokens per image
  int64_t mask_b = 0;  // tokens per target block
  double time_ms = 0;  // the training step (forward, backward, update)
  int64_t step = 0;    // 1-based global step
  double lr = 0, wd = 0, momentum = 0;
  double images_per_second = 0;
  double step_ms = 0;  // the whole iteration, data wait included
  double data_wait_ms = 0;
};

// One probe result: one row of {write_tag}_eval.csv.
struct EvalRow {
  int64_t epoch = 0;     // the epoch of the last training step, 1-based as in the step log
  int64_t step = 0;      // training steps done
  std::string features;  // target (the EMA encoder being trained) | random_init | raw_pixels
  std::string protocol;  // linear | knn
  double top1 = 0;       // fraction of the test samples, in [0, 1]
  int64_t train_samples = 0, test_samples = 0;
  double seconds = 0;        // feature extraction plus this probe
  double train_seconds = 0;  // training time of this process so far (evaluations excluded; 0 again on resume)
};

class CsvLog {
 public:
  // Opens `path`. With resume_after_step >= 0 an existing log keeps its rows up to that step (rows written
  // after the checkpoint being resumed are dropped, so the log reads as one run); otherwise it starts afresh.
  CsvLog(const std::string& path, int64_t resume_after_step);

  void write(const CsvRow& row);
  void flush() { out_.flush(); }
  const std::string& path() const { return path_; }

  static const char* header();

 private:
  std::string path_;
  std::ofstream out_;
};

// {write_tag}_eval.csv, opened and resumed like CsvLog.
class EvalCsvLog {
 public:
  EvalCsvLog(const std::string& path, int64_t resume_after_step);
  void write(const EvalRow& row);

  static const char* header();

 private:
  std::ofstream out_;
};

}  // namespace ijepa::train
