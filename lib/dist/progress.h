// Each rank's progress through its collectives, and the stall report built from the peers' records.
//
// Every collective call takes the next sequence number on its rank. Since all ranks must call the same
// collectives in the same order, a rank whose `called` count is below a stalled collective's number has not
// arrived there. The backends keep this record cheaply (a counter and a short name per call) and hand it to
// peers on request over a side channel, so a stalled rank can name the ranks it is waiting for.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace ijepa::dist {

struct ProgressRecord {
  int64_t called = 0;     // collectives entered; the last one has this sequence number
  int64_t completed = 0;  // collectives this rank has seen complete
  std::string last_op;    // name of collective number `called`, e.g. "all_reduce(fp32, 4194304 B)"
};

// Thread-safe; shared by the backends of one communicator stack (NCCL records into its MPI control's).
class ProgressTracker {
 public:
  // Records that this rank entered collective `op`; returns its sequence number (1, 2, ...).
  int64_t begin(const std::string& op);
  void complete();
  ProgressRecord snapshot() const;

 private:
  mutable std::mutex mutex_;
  ProgressRecord record_;
};

// Fixed-size wire form for the side channel (kProgressWireBytes bytes; names are cut to fit).
inline constexpr size_t kProgressWireBytes = 80;
std::string encode_progress(const ProgressRecord& record);
ProgressRecord decode_progress(const std::string& bytes);

// "all_reduce(...) #42 did not complete within 5 s on rank 0 of 2; not arrived: rank 1 (last entered #41
// barrier); ..." `peers[r]` is rank r's record, or nullopt when rank r did not answer.
std::string describe_stall(const std::string& op, int64_t seq, double timeout_s, int rank,
                           const std::vector<std::optional<ProgressRecord>>& peers);

}  // namespace ijepa::dist
