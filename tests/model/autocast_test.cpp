// meta.use_bfloat16 resolved per device, and the CPU check it rests on.
#include "model/autocast.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace ijepa::model {
namespace {

using common::Bf16Mode;

TEST(Bf16Choice, AutoIsBf16OnlyWhereItIsNativeAndTrueAndFalseStay) {
  EXPECT_TRUE(choose_bf16(Bf16Mode::kAuto, c10::DeviceType::CUDA, false).enabled);
  EXPECT_TRUE(choose_bf16(Bf16Mode::kAuto, c10::DeviceType::CPU, true).enabled);
  const Bf16Choice fallback = choose_bf16(Bf16Mode::kAuto, c10::DeviceType::CPU, false);
  EXPECT_FALSE(fallback.enabled);
  EXPECT_FALSE(fallback.slow);
  EXPECT_NE(fallback.note.find("precision: fp32"), std::string::npos) << fallback.note;
  EXPECT_NE(fallback.note.find("no native bf16"), std::string::npos) << fallback.note;

  for (bool native : {false, true}) {
    EXPECT_FALSE(choose_bf16(Bf16Mode::kOff, c10::DeviceType::CPU, native).enabled);
    EXPECT_FALSE(choose_bf16(Bf16Mode::kOff, c10::DeviceType::CUDA, native).enabled);
    EXPECT_TRUE(choose_bf16(Bf16Mode::kOn, c10::DeviceType::CUDA, native).enabled);
  }
}

TEST(Bf16Choice, Bf16AskedForOnACpuWithoutItRunsButSaysHowToAvoidTheSlowPath) {
  const Bf16Choice slow = choose_bf16(Bf16Mode::kOn, c10::DeviceType::CPU, false);
  EXPECT_TRUE(slow.enabled);
  EXPECT_TRUE(slow.slow);
  EXPECT_NE(slow.note.find("slower than fp32"), std::string::npos) << slow.note;
  EXPECT_NE(slow.note.find("meta.use_bfloat16 to false, or to auto"), std::string::npos) << slow.note;
  EXPECT_FALSE(choose_bf16(Bf16Mode::kOn, c10::DeviceType::CPU, true).slow);
  EXPECT_FALSE(choose_bf16(Bf16Mode::kOn, c10::DeviceType::CUDA, false).slow);
}

// The CPU's flags, from /proc/cpuinfo (x86 Linux).
std::set<std::string> cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::set<std::string> flags;
    for (std::string flag; words >> flag;) flags.insert(flag);
    return flags;
  }
  return {};
}

#if defined(__x86_64__)
TEST(Bf16Choice, NativeBf16FollowsTheCpuFlagsAsOneDnnReadsThem) {
  const auto flags = cpu_flags();
  ASSERT_FALSE(flags.empty()) << "no flags line in /proc/cpuinfo";
  const auto has = [&](const char* flag) { return flags.count(flag) > 0; };
  // oneDNN's avx512_core (AVX-512 F, BW, VL, DQ) or avx2_vnni_2 (AVX2 with VNNI, VNNI-INT8 and NE-CONVERT).
  const bool avx512_core = has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512dq");
  const bool avx2_vnni_2 = has("avx_vnni") && has("avx_vnni_int8") && has("avx_ne_convert");
  EXPECT_EQ(cpu_has_native_bf16(), avx512_core || avx2_vnni_2)
      << "avx512_core " << avx512_core << ", avx2_vnni_2 " << avx2_vnni_2;
}
#endif

}  // namespace
}  // namespace ijepa::model
