// The per-rank CSV log, {write_tag}_r{rank}.csv: the reference's columns first (epoch, itr, loss, mask-A,
// mask-B, time (ms)), then step, lr, wd, momentum, images/s, step ms and data-wait ms. No LibTorch here.
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

}  // namespace ijepa::train
