// Operator-level profile of a stretch of work through LibTorch's Kineto profiler (CPU activities), for
// `ijepa-bench step --profile`: where a step's time goes, op by op, next to the reference's torch profiler.
#pragma once

#include <cstddef>
#include <string>

namespace ijepa::train {

class OpProfile {
 public:
  // Starts recording every ATen op on every thread; with_shapes also records each op's input shapes (for a trace:
  // which product ran at which size), at some cost per op.
  explicit OpProfile(bool with_shapes = false);
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;
  ~OpProfile();  // stops recording if finish() was not called

  // Stops recording, writes a Chrome trace to trace_path (when not empty) and returns a table of the `top` ops by
  // self time: calls, self and inclusive milliseconds, each divided by `steps`.
  std::string finish(const std::string& trace_path, int steps, std::size_t top = 25);

 private:
  bool recording_ = true;
};

}  // namespace ijepa::train
