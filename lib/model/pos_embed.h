// The fixed 2D sin-cos positional table of the reference. No LibTorch here.
#pragma once

#include <cstdint>
#include <vector>

namespace ijepa::model {

// Row-major [grid*grid, dim] table in float64, token n = row*grid + col. As in the reference, the first dim/2
// channels encode the COLUMN and the last dim/2 the ROW; each half is [sin(pos*omega), cos(pos*omega)] with
// omega_k = 1 / 10000^(k / (dim/4)). dim must be divisible by 4.
std::vector<double> sincos_pos_embed_2d(int64_t dim, int64_t grid);

}  // namespace ijepa::model
