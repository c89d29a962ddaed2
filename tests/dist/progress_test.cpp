// Progress records, their wire form, and the stall report naming the ranks that have not arrived.
#include "dist/progress.h"

#include <gtest/gtest.h>

namespace ijepa::dist {
namespace {

TEST(Progress, NumbersCollectivesFromOne) {
  ProgressTracker tracker;
  EXPECT_EQ(tracker.begin("barrier"), 1);
  EXPECT_EQ(tracker.begin("all_reduce(fp32, 16 B)"), 2);
  tracker.complete();
  const ProgressRecord record = tracker.snapshot();
  EXPECT_EQ(record.called, 2);
  EXPECT_EQ(record.completed, 1);
  EXPECT_EQ(record.last_op, "all_reduce(fp32, 16 B)");
}

TEST(Progress, WireFormRoundTripsAndCutsLongNames) {
  const ProgressRecord record{41, 40, "broadcast(bf16, 1024 B)"};
  const std::string bytes = encode_progress(record);
  ASSERT_EQ(bytes.size(), kProgressWireBytes);
  const ProgressRecord back = decode_progress(bytes);
  EXPECT_EQ(back.called, 41);
  EXPECT_EQ(back.completed, 40);
  EXPECT_EQ(back.last_op, "broadcast(bf16, 1024 B)");
  const ProgressRecord cut = decode_progress(encode_progress({1, 1, std::string(500, 'x')}));
  EXPECT_EQ(cut.last_op, std::string(kProgressWireBytes - 17, 'x'));
  EXPECT_EQ(decode_progress("short").called, 0);
}

TEST(Progress, StallReportNamesRanksBehind) {
  const std::vector<std::optional<ProgressRecord>> peers = {ProgressRecord{42, 41, "all_reduce(fp32, 64 B)"},
                                                            ProgressRecord{41, 41, "barrier"},
                                                            ProgressRecord{42, 41, "all_reduce(fp32, 64 B)"}};
  const std::string report = describe_stall("all_reduce(fp32, 64 B)", 42, 5, 0, peers);
  EXPECT_EQ(report,
            "all_reduce(fp32, 64 B) #42 did not complete within 5 s on rank 0 of 3; not arrived: rank 1 (last "
            "entered #41 barrier)");
}

TEST(Progress, StallReportNamesRanksThatDoNotAnswer) {
  const std::vector<std::optional<ProgressRecord>> peers = {ProgressRecord{7, 6, "barrier"}, std::nullopt,
                                                            std::nullopt};
  const std::string report = describe_stall("barrier", 7, 2.5, 0, peers);
  EXPECT_NE(report.find("barrier #7 did not complete within 2.5 s on rank 0 of 3"), std::string::npos);
  EXPECT_NE(report.find("not answering (exited, crashed or stuck outside the communicator): ranks 1, 2"),
            std::string::npos);
}

TEST(Progress, StallReportWhenEveryoneArrived) {
  const std::vector<std::optional<ProgressRecord>> peers = {ProgressRecord{3, 2, "barrier"},
                                                            ProgressRecord{3, 2, "barrier"}};
  EXPECT_NE(describe_stall("barrier", 3, 1, 1, peers).find("every rank has entered it"), std::string::npos);
}

}  // namespace
}  // namespace ijepa::dist
