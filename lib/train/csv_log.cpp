#include "train/csv_log.h"

#include <sstream>
#include <stdexcept>

#include "common/files.h"

namespace ijepa::train {

namespace {
constexpr int kStepColumn = 6;      // 0-based position of "step" in the step log
constexpr int kEvalStepColumn = 1;  // and in the evaluation log

int64_t step_of(const std::string& line, int step_column) {
  std::istringstream fields(line);
  std::string field;
  for (int i = 0; i <= step_column && std::getline(fields, field, ','); ++i) {
  }
  try {
    return std::stoll(field);
  } catch (const std::exception&) {
    return -1;
  }
}

// Opens `path` afresh with `header`; with resume_after_step >= 0 the rows of steps 1..resume_after_step that the
// file already held are kept (rows written after the checkpoint being resumed are dropped). The kept rows replace
// the file atomically, so a crash meanwhile leaves the old log whole; then rows are appended.
void open_log(std::ofstream& out, const std::string& path, const char* header, int step_column,
              int64_t resume_after_step) {
  std::string text = std::string(header) + '\n';
  if (resume_after_step >= 0) {
    std::ifstream old(path);
    std::string line;
    while (std::getline(old, line)) {
      if (line == header) continue;
      const int64_t step = step_of(line, step_column);
      if (step >= 1 && step <= resume_after_step) text += line + '\n';
    }
  }
  common::write_file_atomic(path, text);
  out.open(path, std::ios::app);
  if (!out) throw std::runtime_error(path + ": cannot open the CSV log for writing");
}
}  // namespace

const char* CsvLog::header() {
  return "epoch,itr,loss,mask-A,mask-B,time (ms),step,lr,wd,momentum,images/s,step ms,data-wait ms";
}

CsvLog::CsvLog(const std::string& path, int64_t resume_after_step) : path_(path) {
  open_log(out_, path, header(), kStepColumn, resume_after_step);
}

void CsvLog::write(const CsvRow& r) {
  out_ << r.epoch << ',' << r.itr << ',' << r.loss << ',' << r.mask_a << ',' << r.mask_b << ',' << r.time_ms << ','
       << r.step << ',' << r.lr << ',' << r.wd << ',' << r.momentum << ',' << r.images_per_second << ',' << r.step_ms
       << ',' << r.data_wait_ms << '\n';
}

const char* EvalCsvLog::header() {
  return "epoch,step,features,protocol,top1,train_samples,test_samples,seconds,train_seconds";
}

EvalCsvLog::EvalCsvLog(const std::string& path, int64_t resume_after_step) {
  open_log(out_, path, header(), kEvalStepColumn, resume_after_step);
}

void EvalCsvLog::write(const EvalRow& r) {
  out_ << r.epoch << ',' << r.step << ',' << r.features << ',' << r.protocol << ',' << r.top1 << ',' << r.train_samples
       << ',' << r.test_samples << ',' << r.seconds << ',' << r.train_seconds << '\n';
  out_.flush();
}

}  // namespace ijepa::train
