// Progress records, their wire form, the stall report naming the ranks that have not arrived and the ranks that
// issue different collectives, and waits for work a rank announced, which are no stall.
#include "dist/progress.h"

#include <gtest/gtest.h>

namespace ijepa::dist {
namespace {

// A record whose last entered collectives are `ops` (the last one is number `called`).
ProgressRecord record(int64_t called, int64_t completed, std::vector<std::string> ops) {
  return ProgressRecord{called, completed, std::move(ops)};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A rank between collectives (every one it entered completed), doing the work it announced for 7.2 s.
ProgressRecord announcing(int64_t called, const std::string& activity) {
  ProgressRecord r = record(called, called, {"barrier"});
  r.activity = activity;
  r.activity_ms = 7200;
  return r;
}

TEST(Progress, NumbersCollectivesFromOne) {
  ProgressTracker tracker;
  EXPECT_EQ(tracker.begin("barrier"), 1);
  EXPECT_EQ(tracker.begin("all_reduce(fp32, 16 B)"), 2);
  tracker.complete(1);
  const ProgressRecord record = tracker.snapshot();
  EXPECT_EQ(record.called, 2);
  EXPECT_EQ(record.completed, 1);
  EXPECT_EQ(record.last_op(), "all_reduce(fp32, 16 B)");
  EXPECT_EQ(record.recent_ops, (std::vector<std::string>{"barrier", "all_reduce(fp32, 16 B)"}));
}

TEST(Progress, CompletedCountsOnlyCollectivesWithNoneOpenBefore) {
  ProgressTracker tracker;
  for (int i = 0; i < 3; ++i) tracker.begin("barrier");
  tracker.complete(2);
  EXPECT_EQ(tracker.snapshot().completed, 0);
  tracker.complete(1);
  EXPECT_EQ(tracker.snapshot().completed, 2);
  tracker.complete(3);
  EXPECT_EQ(tracker.snapshot().completed, 3);
}

TEST(Progress, KeepsTheNamesOfTheLastCollectives) {
  ProgressTracker tracker;
  for (int i = 1; i <= 20; ++i) tracker.begin("op" + std::to_string(i));
  const ProgressRecord record = tracker.snapshot();
  ASSERT_EQ(record.recent_ops.size(), static_cast<size_t>(kProgressRecentOps));
  EXPECT_EQ(record.op_at(4), nullptr);
  ASSERT_NE(record.op_at(5), nullptr);
  EXPECT_EQ(*record.op_at(5), "op5");
  EXPECT_EQ(*record.op_at(20), "op20");
  EXPECT_EQ(record.op_at(21), nullptr);
}

TEST(Progress, WireFormRoundTripsAndCutsLongNames) {
  const ProgressRecord sent = record(41, 40, {"barrier", "broadcast(bf16, 1024 B)"});
  const std::string bytes = encode_progress(sent);
  ASSERT_EQ(bytes.size(), kProgressWireBytes);
  const ProgressRecord back = decode_progress(bytes);
  EXPECT_EQ(back.called, 41);
  EXPECT_EQ(back.completed, 40);
  ASSERT_NE(back.op_at(40), nullptr);
  EXPECT_EQ(*back.op_at(40), "barrier");
  EXPECT_EQ(back.last_op(), "broadcast(bf16, 1024 B)");
  const ProgressRecord cut = decode_progress(encode_progress(record(1, 1, {std::string(500, 'x')})));
  EXPECT_EQ(cut.last_op(), std::string(kProgressOpBytes - 1, 'x'));
  EXPECT_EQ(decode_progress("short").called, 0);
}

TEST(Progress, LocalWorkIsAnnouncedWhileItLasts) {
  ProgressTracker tracker;
  {
    const LocalWork work(tracker, "writing a checkpoint");
    EXPECT_EQ(tracker.snapshot().activity, "writing a checkpoint");
    const ProgressRecord back = decode_progress(encode_progress(tracker.snapshot()));
    EXPECT_EQ(back.activity, "writing a checkpoint");
    EXPECT_GE(back.activity_ms, 0);
  }
  EXPECT_EQ(tracker.snapshot().activity, "");
  const ProgressRecord cut = decode_progress(encode_progress(announcing(1, std::string(500, 'x'))));
  EXPECT_EQ(cut.activity, std::string(kProgressActivityBytes - 1, 'x'));
  EXPECT_EQ(cut.activity_ms, 7200);
}

TEST(Progress, AWaitForAnnouncedWorkIsNoStall) {
  const StallSubject subject{"all_reduce(fp64, 8 B)", 42, 1};
  const ProgressRecord waiting = record(42, 41, {"all_reduce(fp64, 8 B)"});
  EXPECT_EQ(announced_wait(subject, {announcing(41, "writing a checkpoint"), waiting, waiting}),
            "rank 0 writing a checkpoint (for 7.2 s)");
  EXPECT_EQ(announced_wait(subject, {announcing(40, "evaluating"), waiting, announcing(41, "evaluating")}),
            "rank 0 evaluating (for 7.2 s), rank 2 evaluating (for 7.2 s)");
  // Faults stay faults: a rank behind that announced nothing, one inside a collective, a silent one, one that went
  // another way; and nobody to wait for.
  EXPECT_FALSE(announced_wait(subject, {announcing(41, "evaluating"), waiting, record(41, 41, {"barrier"})}));
  ProgressRecord inside = announcing(41, "evaluating");
  inside.completed = 40;
  EXPECT_FALSE(announced_wait(subject, {inside, waiting}));
  EXPECT_FALSE(announced_wait(subject, {announcing(41, "evaluating"), waiting, std::nullopt}));
  EXPECT_FALSE(announced_wait(subject, {announcing(42, "evaluating"), waiting}));
  EXPECT_FALSE(announced_wait(subject, {record(42, 41, {"all_reduce(fp64, 8 B)"}), waiting}));
}

TEST(Progress, StallReportUnlessAnnouncedWaitsOnlyForAnnouncedWork) {
  const StallSubject subject{"barrier", 5, 1};
  PeerRecords peers = {announcing(4, "writing a checkpoint"), record(5, 4, {"barrier"})};
  const auto query = [&](double) { return peers; };
  EXPECT_FALSE(report_stall_unless_announced(query, 5, subject));
  peers[0]->activity.clear();
  const auto report = report_stall_unless_announced(query, 5, subject);
  ASSERT_TRUE(report);
  EXPECT_EQ(*report,
            "barrier #5 did not complete within 5 s on rank 1 of 2; not arrived: rank 0 (last entered #4 "
            "barrier)");
}

TEST(Progress, StallReportNamesRanksBehind) {
  const PeerRecords peers = {record(42, 41, {"all_reduce(fp32, 64 B)"}), record(41, 41, {"barrier"}),
                             record(42, 41, {"all_reduce(fp32, 64 B)"})};
  const StallSubject subject{"all_reduce(fp32, 64 B)", 42, 0};
  EXPECT_EQ(describe_stall(timeout_headline(subject, 5), subject, peers),
            "all_reduce(fp32, 64 B) #42 did not complete within 5 s on rank 0 of 3; not arrived: rank 1 (last "
            "entered #41 barrier)");
}

TEST(Progress, StallReportNamesRanksThatDoNotAnswer) {
  const PeerRecords peers = {record(7, 6, {"barrier"}), std::nullopt, std::nullopt};
  const StallSubject subject{"barrier", 7, 0};
  const std::string report = describe_stall(timeout_headline(subject, 2.5), subject, peers);
  EXPECT_TRUE(contains(report, "barrier #7 did not complete within 2.5 s on rank 0 of 3")) << report;
  EXPECT_TRUE(contains(report, "not answering (exited, crashed or stuck outside the communicator): ranks 1, 2"))
      << report;
}

TEST(Progress, StallReportWhenEveryoneArrived) {
  const PeerRecords peers = {record(3, 2, {"barrier"}), record(3, 2, {"barrier"})};
  const StallSubject subject{"barrier", 3, 1};
  EXPECT_TRUE(contains(describe_stall("barrier #3 stalled", subject, peers), "every rank has entered it"));
}

// The commonest user error: a rank in another collective under the same number counts as arrived by its count.
TEST(Progress, StallReportNamesARankInADifferentCollective) {
  const PeerRecords peers = {record(42, 41, {"barrier", "all_reduce(fp32, 64 B)"}),
                             record(42, 41, {"barrier", "all_reduce(fp32, 128 B)"})};
  const StallSubject subject{"all_reduce(fp32, 64 B)", 42, 0};
  const std::string report = describe_stall(timeout_headline(subject, 5), subject, peers);
  EXPECT_EQ(report,
            "all_reduce(fp32, 64 B) #42 did not complete within 5 s on rank 0 of 2; rank 1 entered #42 as "
            "all_reduce(fp32, 128 B) while rank 0 is in #42 as all_reduce(fp32, 64 B): the ranks issue different "
            "collectives");
}

// A rank stuck in a collective that completed (wrongly) on this rank, which has gone on to the next one.
TEST(Progress, StallReportNamesAnEarlierDifference) {
  const PeerRecords peers = {record(3, 2, {"all_reduce(fp32, 64 B)", "broadcast(fp32, 16 B)", "barrier"}),
                             record(2, 1, {"all_reduce(fp32, 64 B)", "barrier"})};
  const StallSubject subject{"barrier", 3, 0};
  const std::string report = describe_stall(timeout_headline(subject, 5), subject, peers);
  EXPECT_TRUE(contains(report,
                       "rank 1 entered #2 as barrier while rank 0 entered #2 as broadcast(fp32, 16 B): the ranks "
                       "issue different collectives; not arrived: rank 1 (last entered #2 barrier)"))
      << report;
}

// NCCL: the host queues collectives ahead of the device, so a rank has arrived only where its device has.
TEST(Progress, StallReportOfDeviceCollectivesGoesByCompletion) {
  const StallSubject subject{"all_reduce(fp32, 64 B)", 42, 0, Arrival::kStarted};
  std::vector<std::string> ops(kProgressRecentOps, "all_reduce(fp32, 64 B)");
  ops[kProgressRecentOps - 5] = "all_reduce(fp32, 32 B)";  // #41 of rank 1, whose last is #45
  const PeerRecords behind = {record(42, 41, {"all_reduce(fp32, 64 B)"}), record(45, 40, ops)};
  const std::string report = describe_stall(timeout_headline(subject, 5), subject, behind);
  EXPECT_TRUE(contains(report,
                       "not arrived: rank 1 (entered up to #45, but its device is still in #41 "
                       "all_reduce(fp32, 32 B))"))
      << report;

  const PeerRecords arrived = {record(42, 41, {"all_reduce(fp32, 64 B)"}), record(45, 41, ops)};
  EXPECT_TRUE(contains(describe_stall("x", subject, arrived), "every rank's device has reached it"));
}

TEST(Progress, ReportStallAsksThePeersForATenthOfTheTimeout) {
  std::vector<double> waits;
  const auto query = [&](double wait_s) {
    waits.push_back(wait_s);
    return PeerRecords{record(1, 0, {"barrier"}), std::nullopt};
  };
  const StallSubject subject{"barrier", 1, 0};
  const std::string report = report_stall(query, 10, timeout_headline(subject, 10), subject);
  EXPECT_TRUE(contains(report, "barrier #1 did not complete within 10 s on rank 0 of 2")) << report;
  EXPECT_TRUE(contains(report, "not answering")) << report;
  report_stall(query, 1, "x", subject);
  report_stall(query, 300, "x", subject);
  EXPECT_EQ(waits, (std::vector<double>{1.0, 0.5, 2.0}));
}

}  // namespace
}  // namespace ijepa::dist
