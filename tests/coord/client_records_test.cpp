// The client's record conversion: whatever the trainer measures, the result passes the coordinator's
// validation (so one odd value never costs a batch), and a NaN loss survives to be seen.
#include "coord/client_records.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "coord/validation.h"

namespace ijepa::coord {
namespace {

TEST(ClientRecords, OddMeasurementsStillPassValidation) {
  metrics::StepReport report;
  report.step = 3;
  report.loss = std::nan("");
  report.lr = std::numeric_limits<double>::infinity();
  report.step_seconds = std::nan("");
  report.data_wait_seconds = -1.0;
  report.images = -5;
  const v1::StepMetrics m = to_proto(report, 1.7e9);
  EXPECT_NO_THROW(validate(m, "metrics"));
  EXPECT_TRUE(std::isnan(m.loss()));
  EXPECT_EQ(m.step(), 3);
  EXPECT_EQ(m.step_seconds(), 0.0);
  EXPECT_EQ(m.images(), 0);
}

TEST(ClientRecords, EventsAreClippedAndFinite) {
  const v1::Event e = to_proto(EventType::kEvaluationResult, std::string(10000, 'x'), -1, std::nan(""), 1.7e9);
  v1::ReportEventsRequest request;
  request.set_run("r");
  *request.add_events() = e;
  EXPECT_NO_THROW(validate(request));
  EXPECT_EQ(e.message().size(), kMaxTextBytes);
  EXPECT_EQ(e.type(), v1::EVENT_TYPE_EVALUATION_RESULT);

  // An error message with a control character in it is sent (as a space), not refused with its whole batch.
  *request.add_events() = to_proto(EventType::kStall, "timed out\x01 on rank 0\n", 3, 0.0, 1.7e9);
  EXPECT_NO_THROW(validate(request));
  EXPECT_EQ(request.events(1).message(), "timed out  on rank 0\n");
}

// A proto3 string holding anything but UTF-8 fails the whole request at the coordinator, so the text is cut at a
// character boundary and each byte that begins no valid character becomes '?'.
TEST(ClientRecords, TextIsValidUtf8CutAtACharacterBoundary) {
  const std::string ascii(kMaxTextBytes - 1, 'x');
  EXPECT_EQ(sendable_text(ascii + "\xc3\xa9"), ascii) << "a 2-byte character across the limit is left out whole";
  EXPECT_EQ(sendable_text(ascii + "\xe9"), ascii + "?");
  // A Latin-1 path, a stray continuation byte, an overlong '/', a surrogate; then a euro sign and an emoji, kept.
  EXPECT_EQ(sendable_text("/data/caf\xe9/x \x80 \xc0\xaf \xed\xa0\x80 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "/data/caf?/x ? ?? ??? \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(sendable_text("cut \xf0\x9f\x98"), "cut ???") << "a character cut short by the end of the text";

  v1::Event raw;
  raw.set_message("caf\xe9");
  v1::Event parsed;
  EXPECT_FALSE(parsed.ParseFromString(raw.SerializeAsString())) << "what the coordinator would get";
  EXPECT_TRUE(parsed.ParseFromString(to_proto(EventType::kMessage, "caf\xe9", 0, 0.0, 1.7e9).SerializeAsString()));
  EXPECT_EQ(parsed.message(), "caf?");
}

}  // namespace
}  // namespace ijepa::coord
