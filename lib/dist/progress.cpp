// Progress records of collectives and the stall report.
#include "dist/progress.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "common/log.h"

namespace ijepa::dist {

const std::string* ProgressRecord::op_at(int64_t seq) const {
  const int64_t first = called - static_cast<int64_t>(recent_ops.size()) + 1;
  if (seq < first || seq > called) return nullptr;
  return &recent_ops[static_cast<size_t>(seq - first)];
}

std::string ProgressRecord::last_op() const { return recent_ops.empty() ? std::string() : recent_ops.back(); }

int64_t ProgressTracker::begin(const std::string& op) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++called_;
  recent_[called_ % kProgressRecentOps] = op;
  return called_;
}

void ProgressTracker::complete(int64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (seq <= completed_) return;
  completed_ahead_.insert(seq);
  while (!completed_ahead_.empty() && *completed_ahead_.begin() == completed_ + 1) {
    completed_ahead_.erase(completed_ahead_.begin());
    ++completed_;
  }
}

ProgressRecord ProgressTracker::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  ProgressRecord record;
  record.called = called_;
  record.completed = completed_;
  for (int64_t seq = std::max<int64_t>(1, called_ - kProgressRecentOps + 1); seq <= called_; ++seq) {
    record.recent_ops.push_back(recent_[seq % kProgressRecentOps]);
  }
  record.activity = activity_;
  if (!activity_.empty()) {
    record.activity_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - activity_since_)
            .count();
  }
  return record;
}

void ProgressTracker::set_activity(const std::string& activity) {
  std::lock_guard<std::mutex> lock(mutex_);
  activity_ = activity;
  activity_since_ = std::chrono::steady_clock::now();
}

LocalWork::LocalWork(ProgressTracker& progress, const std::string& activity) : progress_(progress) {
  progress_.set_activity(activity);
}

LocalWork::~LocalWork() { progress_.set_activity(""); }

// Layout: called, completed, the number of names and activity_ms (8 bytes each), then one slot of kProgressOpBytes
// per name, oldest first, then the activity's slot of kProgressActivityBytes; each text ends in at least one '\0'.
constexpr size_t kProgressOpsOffset = 32;
constexpr size_t kProgressActivityOffset = kProgressOpsOffset + kProgressRecentOps * kProgressOpBytes;

std::string encode_progress(const ProgressRecord& record) {
  std::string bytes(kProgressWireBytes, '\0');
  const int64_t count = std::min<int64_t>(static_cast<int64_t>(record.recent_ops.size()), kProgressRecentOps);
  std::memcpy(bytes.data(), &record.called, sizeof(int64_t));
  std::memcpy(bytes.data() + 8, &record.completed, sizeof(int64_t));
  std::memcpy(bytes.data() + 16, &count, sizeof(int64_t));
  std::memcpy(bytes.data() + 24, &record.activity_ms, sizeof(int64_t));
  const size_t skip = record.recent_ops.size() - static_cast<size_t>(count);
  for (size_t i = 0; i < static_cast<size_t>(count); ++i) {
    const std::string& op = record.recent_ops[skip + i];
    std::memcpy(bytes.data() + kProgressOpsOffset + i * kProgressOpBytes, op.data(),
                std::min(op.size(), kProgressOpBytes - 1));
  }
  std::memcpy(bytes.data() + kProgressActivityOffset, record.activity.data(),
              std::min(record.activity.size(), kProgressActivityBytes - 1));
  return bytes;
}

ProgressRecord decode_progress(const std::string& bytes) {
  ProgressRecord record;
  if (bytes.size() != kProgressWireBytes) return record;
  int64_t count = 0;
  std::memcpy(&record.called, bytes.data(), sizeof(int64_t));
  std::memcpy(&record.completed, bytes.data() + 8, sizeof(int64_t));
  std::memcpy(&count, bytes.data() + 16, sizeof(int64_t));
  std::memcpy(&record.activity_ms, bytes.data() + 24, sizeof(int64_t));
  count = std::clamp<int64_t>(count, 0, std::clamp<int64_t>(record.called, 0, kProgressRecentOps));
  for (int64_t i = 0; i < count; ++i) {
    const char* slot = bytes.data() + kProgressOpsOffset + i * kProgressOpBytes;
    record.recent_ops.emplace_back(slot, strnlen(slot, kProgressOpBytes - 1));
  }
  const char* activity = bytes.data() + kProgressActivityOffset;
  record.activity.assign(activity, strnlen(activity, kProgressActivityBytes - 1));
  return record;
}

namespace {

std::string join_ranks(const std::vector<int>& ranks) {
  std::ostringstream out;
  for (size_t i = 0; i < ranks.size(); ++i) out << (i ? ", " : "") << ranks[i];
  return out.str();
}

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::ostringstream out;
  for (size_t i = 0; i < items.size(); ++i) out << (i ? separator : "") << items[i];
  return out.str();
}

// "rank 1 entered #42 as barrier while rank 0 is in #42 as all_reduce(fp32, 64 B)" for the first number up to the
// subject's under which the two records name different collectives; nullopt when the names they share agree.
std::optional<std::string> first_mismatch(const StallSubject& subject, const ProgressRecord* mine, int peer,
                                          const ProgressRecord& theirs) {
  const int64_t first = std::max<int64_t>(1, theirs.called - static_cast<int64_t>(theirs.recent_ops.size()) + 1);
  for (int64_t seq = first; seq <= std::min(subject.seq, theirs.called); ++seq) {
    const std::string* my_op = seq == subject.seq ? &subject.op : mine ? mine->op_at(seq) : nullptr;
    const std::string* their_op = theirs.op_at(seq);
    if (my_op == nullptr || their_op == nullptr || *my_op == *their_op) continue;
    std::ostringstream out;
    out << "rank " << peer << " entered #" << seq << " as " << *their_op << " while rank " << subject.rank
        << (seq == subject.seq ? " is in #" : " entered #") << seq << " as " << *my_op;
    return out.str();
  }
  return std::nullopt;
}

// "rank 1 (last entered #41 barrier)" for a peer that has not arrived at the subject; nullopt when it has.
std::optional<std::string> lag(const StallSubject& subject, int peer, const ProgressRecord& theirs) {
  std::ostringstream out;
  if (theirs.called < subject.seq) {
    out << "rank " << peer << " (last entered #" << theirs.called;
    if (!theirs.last_op().empty()) out << " " << theirs.last_op();
    out << ")";
    return out.str();
  }
  if (subject.arrival == Arrival::kStarted && theirs.completed < subject.seq - 1) {
    const int64_t current = theirs.completed + 1;
    out << "rank " << peer << " (entered up to #" << theirs.called << ", but its device is still in #" << current;
    if (const std::string* op = theirs.op_at(current)) out << " " << *op;
    out << ")";
    return out.str();
  }
  return std::nullopt;
}

// How long a stalled rank waits for the peers' records: long enough for busy peers to answer, short next to the
// timeout that has already passed.
double peer_query_wait_s(double timeout_s) { return std::clamp(timeout_s * 0.1, 0.5, 2.0); }

}  // namespace

std::string describe_stall(const std::string& headline, const StallSubject& subject, const PeerRecords& peers) {
  const ProgressRecord* mine = nullptr;
  if (subject.rank >= 0 && subject.rank < static_cast<int>(peers.size()) && peers[subject.rank]) {
    mine = &*peers[subject.rank];
  }
  std::vector<std::string> mismatched, behind;
  std::vector<int> silent;
  for (size_t r = 0; r < peers.size(); ++r) {
    const int peer = static_cast<int>(r);
    if (!peers[r]) {
      silent.push_back(peer);
      continue;
    }
    if (peer == subject.rank) continue;
    if (auto mismatch = first_mismatch(subject, mine, peer, *peers[r])) mismatched.push_back(*mismatch);
    if (auto behind_by = lag(subject, peer, *peers[r])) behind.push_back(*behind_by);
  }
  std::ostringstream out;
  out << headline << " on rank " << subject.rank << " of " << peers.size();
  if (!mismatched.empty()) out << "; " << join(mismatched, "; ") << ": the ranks issue different collectives";
  if (!behind.empty()) out << "; not arrived: " << join(behind, ", ");
  if (!silent.empty()) {
    out << "; not arrived and not answering (exited, crashed or stuck outside the communicator): rank"
        << (silent.size() > 1 ? "s " : " ") << join_ranks(silent);
  }
  if (mismatched.empty() && behind.empty() && silent.empty()) {
    out << (subject.arrival == Arrival::kStarted ? "; every rank's device has reached it"
                                                 : "; every rank has entered it")
        << ", so the transfer itself is stuck (network or runtime failure)";
  }
  return out.str();
}

std::optional<std::string> announced_wait(const StallSubject& subject, const PeerRecords& peers) {
  const ProgressRecord* mine = nullptr;
  if (subject.rank >= 0 && subject.rank < static_cast<int>(peers.size()) && peers[subject.rank]) {
    mine = &*peers[subject.rank];
  }
  std::vector<std::string> busy;
  for (size_t r = 0; r < peers.size(); ++r) {
    const int peer = static_cast<int>(r);
    if (!peers[r]) return std::nullopt;
    if (peer == subject.rank) continue;
    const ProgressRecord& theirs = *peers[r];
    if (first_mismatch(subject, mine, peer, theirs)) return std::nullopt;
    if (!lag(subject, peer, theirs)) continue;
    // Inside no collective (one it is stuck in is no announced work), and short of the subject.
    if (theirs.activity.empty() || theirs.completed != theirs.called || theirs.called >= subject.seq) {
      return std::nullopt;
    }
    std::ostringstream out;
    out << "rank " << peer << " " << theirs.activity << " (for " << static_cast<double>(theirs.activity_ms) / 1e3
        << " s)";
    busy.push_back(out.str());
  }
  if (busy.empty()) return std::nullopt;
  return join(busy, ", ");
}

std::string timeout_headline(const StallSubject& subject, double timeout_s) {
  std::ostringstream out;
  out << subject.op << " #" << subject.seq << " did not complete within " << timeout_s << " s";
  return out.str();
}

std::string report_stall(const std::function<PeerRecords(double)>& query, double timeout_s, const std::string& headline,
                         const StallSubject& subject) {
  return describe_stall(headline, subject, query(peer_query_wait_s(timeout_s)));
}

std::optional<std::string> report_stall_unless_announced(const std::function<PeerRecords(double)>& query,
                                                         double timeout_s, const StallSubject& subject) {
  const PeerRecords peers = query(peer_query_wait_s(timeout_s));
  if (const auto busy = announced_wait(subject, peers)) {
    log::warn(log::str("dist: ", subject.op, " #", subject.seq, " on rank ", subject.rank, " has waited past ",
                       "dist.timeout_s = ", timeout_s, " s for work announced by ", *busy, "; waiting on"));
    return std::nullopt;
  }
  return describe_stall(timeout_headline(subject, timeout_s), subject, peers);
}

}  // namespace ijepa::dist
