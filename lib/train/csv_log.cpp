#include "train/csv_log.h"

#include <sstream>
#include <stdexcept>
#include <vector>

namespace ijepa::train {

namespace {
constexpr int kStepColumn = 6;  // 0-based position of "step"

int64_t step_of(const std::string& line) {
  std::istringstream fields(line);
  std::string field;
  for (int i = 0; i <= kStepColumn && std::getline(fields, field, ','); ++i) {
  }
  try {
    return std::stoll(field);
  } catch (const std::exception&) {
    return -1;
  }
}
}  // namespace

const char* CsvLog::header() {
  return "epoch,itr,loss,mask-A,mask-B,time (ms),step,lr,wd,momentum,images/s,step ms,data-wait ms";
}

CsvLog::CsvLog(const std::string& path, int64_t resume_after_step) : path_(path) {
  std::vector<std::string> kept;
  if (resume_after_step >= 0) {
    std::ifstream old(path);
    std::string line;
    while (std::getline(old, line)) {
      if (line == header()) continue;
      const int64_t step = step_of(line);
      if (step >= 1 && step <= resume_after_step) kept.push_back(line);
    }
  }
  out_.open(path, std::ios::trunc);
  if (!out_) throw std::runtime_error(path + ": cannot open the CSV log for writing");
  out_ << header() << '\n';
  for (const auto& line : kept) out_ << line << '\n';
  out_.flush();
}

void CsvLog::write(const CsvRow& r) {
  out_ << r.epoch << ',' << r.itr << ',' << r.loss << ',' << r.mask_a << ',' << r.mask_b << ',' << r.time_ms << ','
       << r.step << ',' << r.lr << ',' << r.wd << ',' << r.momentum << ',' << r.images_per_second << ',' << r.step_ms
       << ',' << r.data_wait_ms << '\n';
}

}  // namespace ijepa::train
