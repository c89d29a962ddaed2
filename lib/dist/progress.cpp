// Progress records of collectives and the stall report.
#include "dist/progress.h"

#include <algorithm>
#include <cstring>
#include <sstream>

namespace ijepa::dist {

int64_t ProgressTracker::begin(const std::string& op) {
  std::lock_guard<std::mutex> lock(mutex_);
  record_.last_op = op;
  return ++record_.called;
}

void ProgressTracker::complete() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++record_.completed;
}

ProgressRecord ProgressTracker::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return record_;
}

std::string encode_progress(const ProgressRecord& record) {
  std::string bytes(kProgressWireBytes, '\0');
  std::memcpy(bytes.data(), &record.called, sizeof(int64_t));
  std::memcpy(bytes.data() + 8, &record.completed, sizeof(int64_t));
  // The last byte stays '\0' so the name is always terminated.
  std::memcpy(bytes.data() + 16, record.last_op.data(), std::min(record.last_op.size(), kProgressWireBytes - 17));
  return bytes;
}

ProgressRecord decode_progress(const std::string& bytes) {
  ProgressRecord record;
  if (bytes.size() != kProgressWireBytes) return record;
  std::memcpy(&record.called, bytes.data(), sizeof(int64_t));
  std::memcpy(&record.completed, bytes.data() + 8, sizeof(int64_t));
  record.last_op = std::string(bytes.c_str() + 16);
  return record;
}

namespace {

std::string join_ranks(const std::vector<int>& ranks) {
  std::ostringstream out;
  for (size_t i = 0; i < ranks.size(); ++i) out << (i ? ", " : "") << ranks[i];
  return out.str();
}

}  // namespace

std::string describe_stall(const std::string& op, int64_t seq, double timeout_s, int rank,
                           const std::vector<std::optional<ProgressRecord>>& peers) {
  std::ostringstream out;
  out << op << " #" << seq << " did not complete within " << timeout_s << " s on rank " << rank << " of "
      << peers.size();
  std::vector<int> silent;
  std::vector<std::string> behind;
  for (size_t r = 0; r < peers.size(); ++r) {
    if (!peers[r]) {
      silent.push_back(static_cast<int>(r));
    } else if (peers[r]->called < seq) {
      std::ostringstream line;
      line << "rank " << r << " (last entered #" << peers[r]->called;
      if (!peers[r]->last_op.empty()) line << " " << peers[r]->last_op;
      line << ")";
      behind.push_back(line.str());
    }
  }
  if (!behind.empty()) {
    out << "; not arrived: ";
    for (size_t i = 0; i < behind.size(); ++i) out << (i ? ", " : "") << behind[i];
  }
  if (!silent.empty()) {
    out << "; not arrived and not answering (exited, crashed or stuck outside the communicator): rank"
        << (silent.size() > 1 ? "s " : " ") << join_ranks(silent);
  }
  if (behind.empty() && silent.empty()) {
    out << "; every rank has entered it, so the transfer itself is stuck (network or runtime failure)";
  }
  return out.str();
}

}  // namespace ijepa::dist
