#include "model/pos_embed.h"

#include <cmath>
#include <stdexcept>

namespace ijepa::model {

std::vector<double> sincos_pos_embed_2d(int64_t dim, int64_t grid) {
  if (dim % 4 != 0) throw std::invalid_argument("sin-cos positional embedding needs a width divisible by 4");
  const int64_t quarter = dim / 4;
  std::vector<double> omega(quarter);
  for (int64_t k = 0; k < quarter; ++k) {
    omega[k] = 1.0 / std::pow(10000.0, static_cast<double>(k) / (static_cast<double>(dim) / 4.0));
  }
  std::vector<double> table(grid * grid * dim);
  for (int64_t row = 0; row < grid; ++row) {
    for (int64_t col = 0; col < grid; ++col) {
      double* out = &table[(row * grid + col) * dim];
      for (int64_t half = 0; half < 2; ++half) {
        const double pos = half == 0 ? static_cast<double>(col) : static_cast<double>(row);
        double* h = out + half * (dim / 2);
        for (int64_t k = 0; k < quarter; ++k) {
          h[k] = std::sin(pos * omega[k]);
          h[quarter + k] = std::cos(pos * omega[k]);
        }
      }
    }
  }
  return table;
}

}  // namespace ijepa::model
