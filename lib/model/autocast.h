// Scoped bf16 autocast, as `with torch.autocast(device, dtype=torch.bfloat16)` in Python: used by the training
// step and by feature extraction for evaluation.
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <string>

#include "common/config.h"

namespace ijepa::model {

// Whether ATen runs bf16 matrix products on this CPU through oneDNN (AVX-512 or AMX on x86). Without, they fall
// back to a scalar kernel: on a 2-core AVX2 machine (AMD EPYC, 2026-11-27) a 1024^3 bf16 product took 2.4 s
// against 19 ms in fp32, and a quickstart training step 11 s against 0.75 s.
bool cpu_has_native_bf16();

// bf16 on this device would run ATen's scalar fallback (a CPU without native bf16 matrix products).
bool bf16_is_slow(c10::DeviceType device);
// Why, for a warning: "this CPU has no native bf16 matrix products (...): ... slower than fp32".
extern const char* const kSlowBf16Reason;

// meta.use_bfloat16 resolved for a device: auto is bf16 on CUDA, and on a CPU only where cpu_native_bf16.
struct Bf16Choice {
  bool enabled = false;  // bf16 autocast (fp32 master weights)
  bool slow = false;     // bf16 asked for on a CPU without native bf16 matrix products: warn
  std::string note;      // one line for the log: what runs and why
};
Bf16Choice choose_bf16(common::Bf16Mode asked, c10::DeviceType device, bool cpu_native_bf16);

// Whether CPU autocast is on with bf16 on this thread (an AutocastGuard for the CPU in scope, or its Python twin).
bool cpu_bf16_autocast_active();

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
