// Scoped bf16 autocast, as `with torch.autocast(device, dtype=torch.bfloat16)` in Python: used by the training
// step and by feature extraction for evaluation.
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

namespace ijepa::model {

// Autocast to bf16 for one device type while in scope, restoring the previous state; a no-op when disabled.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, bool enabled);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool enabled_;
  bool was_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::kBFloat16;
};

}  // namespace ijepa::model
