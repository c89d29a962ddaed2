// The reference's block-size arithmetic of the multi-block masks, free of LibTorch so that config validation
// (lib/common, which has no LibTorch) can reject impossible mask scales before any work.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ijepa::masking {

struct BlockSize {
  int64_t h, w;
};

struct BlockRange {
  double scale_min, scale_max;    // fraction of the grid's patches
  double aspect_min, aspect_max;  // height / width
};

// The reference's block size on a grid_h x grid_w patch grid for one uniform number r in [0, 1): scale and
// aspect share r; sides round half to even and stay below the grid's.
BlockSize block_size(int64_t grid_h, int64_t grid_w, double r, const BlockRange& range);

// A block is valid with more than min_keep patches, so a draw whose block is no larger retries for ever (the
// reference hangs there). One message per block kind (target: mask.pred_mask_scale, context:
// mask.enc_mask_scale) for which some r gives no larger block; empty when both are sound.
std::vector<std::string> unreachable_block_problems(int64_t grid_h, int64_t grid_w, int64_t min_keep,
                                                    const BlockRange& target, const BlockRange& context);

}  // namespace ijepa::masking
