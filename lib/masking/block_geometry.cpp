#include "masking/block_geometry.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace ijepa::masking {

namespace {
// Python's round(): halves to even.
int64_t round_half_even(double x) { return static_cast<int64_t>(std::nearbyint(x)); }
}  // namespace

BlockSize block_size(int64_t grid_h, int64_t grid_w, double r, const BlockRange& range) {
  const double scale = range.scale_min + r * (range.scale_max - range.scale_min);
  const auto keep = static_cast<int64_t>(static_cast<double>(grid_h * grid_w) * scale);
  const double aspect = range.aspect_min + r * (range.aspect_max - range.aspect_min);
  int64_t h = round_half_even(std::sqrt(static_cast<double>(keep) * aspect));
  int64_t w = round_half_even(std::sqrt(static_cast<double>(keep) / aspect));
  while (h >= grid_h) --h;
  while (w >= grid_w) --w;
  return {h, w};
}

std::vector<std::string> unreachable_block_problems(int64_t grid_h, int64_t grid_w, int64_t min_keep,
                                                    const BlockRange& target, const BlockRange& context) {
  std::vector<std::string> problems;
  for (const auto& [key, range] : {std::pair{"mask.pred_mask_scale", target}, {"mask.enc_mask_scale", context}}) {
    // The size is a function of one uniform number: scan its range.
    constexpr int kSteps = 4096;
    for (int i = 0; i <= kSteps; ++i) {
      const double r = std::min(static_cast<double>(i) / kSteps, std::nextafter(1.0, 0.0));
      const BlockSize size = block_size(grid_h, grid_w, r, range);
      if (size.h * size.w > min_keep) continue;
      problems.push_back(std::string(key) + ": some draws give a " + std::to_string(size.h) + "x" +
                         std::to_string(size.w) + " block of " + std::to_string(grid_h) + "x" + std::to_string(grid_w) +
                         " patches, which can never hold more than mask.min_keep = " + std::to_string(min_keep) +
                         " patches; raise the scale or lower mask.min_keep");
      break;
    }
  }
  return problems;
}

}  // namespace ijepa::masking
