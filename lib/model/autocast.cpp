#include "model/autocast.h"

#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>

namespace ijepa::model {

bool cpu_has_native_bf16() {
  // The check ATen itself makes before handing a bf16 matrix product to oneDNN (mkldnn_bf16_device_check).
  static const bool native = [] {
    const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_is_mkldnn_bf16_supported", "");
    return op.typed<bool()>().call();
  }();
  return native;
}

const char* const kSlowBf16Reason =
    "this CPU has no native bf16 matrix products (no AVX-512 or AMX): ATen runs them in a scalar fallback, "
    "10-100x slower than fp32";

bool bf16_is_slow(c10::DeviceType device) { return device == c10::DeviceType::CPU && !cpu_has_native_bf16(); }

Bf16Choice choose_bf16(common::Bf16Mode asked, c10::DeviceType device, bool cpu_native_bf16) {
  const bool native = device == c10::DeviceType::CUDA || cpu_native_bf16;
  Bf16Choice choice;
  switch (asked) {
    case common::Bf16Mode::kOff:
      choice.note = "precision: fp32 (meta.use_bfloat16: false)";
      break;
    case common::Bf16Mode::kAuto:
      choice.enabled = native;
      choice.note = native ? "precision: bf16 autocast, fp32 master weights (meta.use_bfloat16: auto)"
                           : "precision: fp32 (meta.use_bfloat16: auto, and this CPU has no native bf16 matrix "
                             "products: no AVX-512 or AMX)";
      break;
    case common::Bf16Mode::kOn:
      choice.enabled = true;
      choice.slow = !native;
      choice.note = native ? "precision: bf16 autocast, fp32 master weights (meta.use_bfloat16: true)"
                           : std::string("precision: bf16 autocast, but ") + kSlowBf16Reason +
                                 "; set meta.use_bfloat16 to false, or to auto for bf16 only where it is native";
      break;
  }
  return choice;
}

bool cpu_bf16_autocast_active() {
  return at::autocast::is_autocast_enabled(at::kCPU) && at::autocast::get_autocast_dtype(at::kCPU) == at::kBFloat16;
}

AutocastGuard::AutocastGuard(c10::DeviceType device, bool enabled) : device_(device), enabled_(enabled) {
  if (!enabled_) return;
  was_enabled_ = at::autocast::is_autocast_enabled(device_);
  previous_dtype_ = at::autocast::get_autocast_dtype(device_);
  at::autocast::set_autocast_enabled(device_, true);
  at::autocast::set_autocast_dtype(device_, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  // Leaving the outermost region drops the cached bf16 copies of the weights, as torch.autocast does.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_, was_enabled_);
  at::autocast::set_autocast_dtype(device_, previous_dtype_);
}

}  // namespace ijepa::model
