// BoundedQueue: drops the oldest when full and removes exactly what was sent.
#include "coord/bounded_queue.h"

#include <gtest/gtest.h>

namespace ijepa::coord {
namespace {

TEST(BoundedQueue, DropsOldestWhenFull) {
  BoundedQueue<int> queue(3);
  EXPECT_FALSE(queue.push(1));
  EXPECT_FALSE(queue.push(2));
  EXPECT_FALSE(queue.push(3));
  EXPECT_TRUE(queue.push(4));
  uint64_t last = 0;
  EXPECT_EQ(queue.peek(10, last), (std::vector<int>{2, 3, 4}));
}

TEST(BoundedQueue, PopThroughIgnoresItemsDroppedWhileSending) {
  BoundedQueue<int> queue(2);
  queue.push(1);
  queue.push(2);
  uint64_t last = 0;
  EXPECT_EQ(queue.peek(2, last), (std::vector<int>{1, 2}));
  queue.push(3);                           // drops 1 while "in flight"
  EXPECT_EQ(queue.pop_through(last), 1u);  // only 2 was still queued
  uint64_t rest = 0;
  EXPECT_EQ(queue.peek(10, rest), (std::vector<int>{3}));
}

TEST(BoundedQueue, ZeroCapacityMeansOne) {
  BoundedQueue<int> queue(0);
  queue.push(1);
  EXPECT_TRUE(queue.push(2));
  EXPECT_EQ(queue.size(), 1u);
}

}  // namespace
}  // namespace ijepa::coord
