// A FIFO of fixed capacity that drops its oldest item when full, and hands out items by sequence number so a
// sender can peek a batch, send it without holding any lock, and then remove exactly what it sent even if
// the producer dropped or added items meanwhile. Not thread-safe: the owner locks around it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

namespace ijepa::coord {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

  // Appends ITEM; returns true when the oldest item had to be dropped to make room.
  bool push(T item) {
    const bool dropped = items_.size() >= capacity_;
    if (dropped) items_.pop_front();
    items_.emplace_back(next_seq_++, std::move(item));
    return dropped;
  }

  // Copies up to N items from the front; LAST_SEQ receives the sequence number of the last one copied.
  std::vector<T> peek(size_t n, uint64_t& last_seq) const {
    std::vector<T> batch;
    for (size_t i = 0; i < n && i < items_.size(); ++i) {
      batch.push_back(items_[i].second);
      last_seq = items_[i].first;
    }
    return batch;
  }

  // Removes the items with sequence numbers up to LAST_SEQ that are still queued; returns how many.
  size_t pop_through(uint64_t last_seq) {
    size_t popped = 0;
    while (!items_.empty() && items_.front().first <= last_seq) {
      items_.pop_front();
      ++popped;
    }
    return popped;
  }

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }

 private:
  size_t capacity_;
  uint64_t next_seq_ = 1;
  std::deque<std::pair<uint64_t, T>> items_;
};

}  // namespace ijepa::coord
