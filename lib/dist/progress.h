// Each rank's progress through its collectives, and the stall report built from the peers' records.
//
// Every collective call takes the next sequence number on its rank. Since all ranks must call the same
// collectives in the same order, a rank whose `called` count is below a stalled collective's number has not
// arrived there, and a rank whose collective of that number has another name (another kind, dtype or size)
// issues different collectives. The backends keep this record cheaply (a counter and the names of the last
// few calls) and hand it to peers on request over a side channel, so a stalled rank can name the ranks it is
// waiting for and the ones that went another way.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ijepa::dist {

// How many of the last collectives' names a record keeps: enough for the buckets a gradient step starts
// before it waits for the first.
inline constexpr int64_t kProgressRecentOps = 16;

struct ProgressRecord {
  int64_t called = 0;     // collectives entered; the last one has this sequence number
  int64_t completed = 0;  // every collective up to this number has completed
  // Names of the last collectives entered, oldest first, e.g. "all_reduce(fp32, 4194304 B)"; the last one is
  // collective `called`.
  std::vector<std::string> recent_ops;
  // Work of its own this rank announced (LocalWork) and has been doing for activity_ms, e.g. "writing checkpoint
  // /runs/a/jepa-step00000400.pth.tar"; empty when none.
  std::string activity;
  int64_t activity_ms = 0;

  // The name of collective `seq`, or nullptr when it is not among the recent ones.
  const std::string* op_at(int64_t seq) const;
  // The name of collective `called`; empty before the first.
  std::string last_op() const;
};

// Thread-safe; shared by the backends of one communicator stack (NCCL records into its MPI control's).
class ProgressTracker {
 public:
  // Records that this rank entered collective `op`; returns its sequence number (1, 2, ...).
  int64_t begin(const std::string& op);
  // Records that collective `seq` completed; collectives may complete out of order.
  void complete(int64_t seq);
  ProgressRecord snapshot() const;
  // Announces local work (empty: none); see LocalWork.
  void set_activity(const std::string& activity);

 private:
  mutable std::mutex mutex_;
  std::string activity_;
  std::chrono::steady_clock::time_point activity_since_;
  int64_t called_ = 0;
  int64_t completed_ = 0;
  std::set<int64_t> completed_ahead_;                   // completed, but after one that has not
  std::array<std::string, kProgressRecentOps> recent_;  // collective n's name at n % kProgressRecentOps
};

// While alive, announces `activity` in this rank's progress record: long work of this rank alone between
// collectives (rank 0 writing a checkpoint, an evaluation), during which the peers wait in their next collective. A
// peer whose collective passes its timeout while the ranks it waits for announce such work, and have completed every
// collective they entered, warns and waits another timeout instead of ending the job (announced_wait). Nests: the
// innermost announcement holds until it ends, then none.
class LocalWork {
 public:
  LocalWork(ProgressTracker& progress, const std::string& activity);
  ~LocalWork();
  LocalWork(const LocalWork&) = delete;
  LocalWork& operator=(const LocalWork&) = delete;

 private:
  ProgressTracker& progress_;
};

// Fixed-size wire form for the side channel (kProgressWireBytes bytes; names are cut to kProgressOpBytes - 1, the
// activity to kProgressActivityBytes - 1).
inline constexpr size_t kProgressOpBytes = 40;
inline constexpr size_t kProgressActivityBytes = 160;
inline constexpr size_t kProgressWireBytes = 32 + kProgressRecentOps * kProgressOpBytes + kProgressActivityBytes;
std::string encode_progress(const ProgressRecord& record);
ProgressRecord decode_progress(const std::string& bytes);

// When a peer counts as arrived at collective n.
enum class Arrival {
  kEntered,  // once it has entered n: collectives on the host (MPI)
  kStarted,  // once it has entered n and completed n - 1: NCCL, whose collectives run in call order on one stream
             // that the host runs ahead of, so entering says nothing about where the device is
};

// What a stall report is about: collective #seq, named op, on `rank`.
struct StallSubject {
  std::string op;
  int64_t seq = 0;
  int rank = 0;
  Arrival arrival = Arrival::kEntered;
};

// Element r is rank r's record, or nullopt when rank r did not answer.
using PeerRecords = std::vector<std::optional<ProgressRecord>>;

// "<headline> on rank 0 of 2", then what the peers' records show, in this order: ranks that entered another
// collective under a number up to the subject's ("rank 1 entered #42 as barrier while rank 0 is in #42 as
// all_reduce(fp32, 64 B): the ranks issue different collectives"), ranks that have not arrived ("not arrived:
// rank 1 (last entered #41 barrier)"), ranks that did not answer, or, when none of these, that every rank has
// arrived and the transfer itself is stuck.
std::string describe_stall(const std::string& headline, const StallSubject& subject, const PeerRecords& peers);

// When every rank that has not arrived at the subject answers, has completed the collectives it entered, and
// announces local work (LocalWork), and no rank went another way or is silent: what they do, e.g. "rank 0 writing
// checkpoint /runs/a/jepa-step00000400.pth.tar (for 7.2 s)". nullopt otherwise, when the stall is a fault.
std::optional<std::string> announced_wait(const StallSubject& subject, const PeerRecords& peers);

// "all_reduce(fp32, 64 B) #42 did not complete within 5 s"
std::string timeout_headline(const StallSubject& subject, double timeout_s);

// Asks the peers through `query` (the argument: how long to wait for answers, a tenth of timeout_s within
// [0.5, 2] s) and returns describe_stall's report.
std::string report_stall(const std::function<PeerRecords(double)>& query, double timeout_s, const std::string& headline,
                         const StallSubject& subject);

// For a collective past its deadline: asks the peers as report_stall does; when announced_wait excuses the wait, logs
// a warning naming it and returns nullopt (the caller waits another timeout_s), else returns the stall report.
std::optional<std::string> report_stall_unless_announced(const std::function<PeerRecords(double)>& query,
                                                         double timeout_s, const StallSubject& subject);

}  // namespace ijepa::dist
