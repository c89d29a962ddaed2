#include "masking/multiblock.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include "common/errors.h"
#include "common/log.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ijepa::masking {

namespace {
constexpr int kTriesBeforeRelaxing = 20;

bool is_power_of_ten(int64_t n) {
  while (n >= 10 && n % 10 == 0) n /= 10;
  return n == 1;
}

torch::Tensor to_tensor(const std::vector<std::vector<int64_t>>& rows) {
  const int64_t b = static_cast<int64_t>(rows.size());
  const int64_t k = rows.empty() ? 0 : static_cast<int64_t>(rows[0].size());
  auto t = torch::empty({b, k}, torch::kInt64);
  auto* out = t.data_ptr<int64_t>();
  for (int64_t i = 0; i < b; ++i) std::copy(rows[i].begin(), rows[i].end(), out + i * k);
  return t;
}
}  // namespace

MultiBlockMaskSampler::MultiBlockMaskSampler(const MaskSpec& spec, at::Generator positions)
    : spec_(spec), positions_(std::move(positions)) {
  const auto problems =
      unreachable_block_problems(spec_.grid_h, spec_.grid_w, spec_.min_keep, pred_range(), enc_range());
  if (!problems.empty()) throw common::InputError(problems.front());
}

BlockSize MultiBlockMaskSampler::block_size(double r, const BlockRange& range) const {
  return masking::block_size(spec_.grid_h, spec_.grid_w, r, range);
}

int64_t MultiBlockMaskSampler::randint(int64_t high) {
  return at::randint(0, high, {1}, positions_, torch::kInt64).item<int64_t>();
}

MultiBlockMaskSampler::Block MultiBlockMaskSampler::sample_block(BlockSize size, const std::vector<Block>* avoid) {
  // The reference's exclusive bound keeps blocks off the last row and column; corrected mode does not.
  const int64_t slack = spec_.corrected ? 1 : 0;
  int64_t tries = 0;
  int timeout = kTriesBeforeRelaxing;
  while (true) {
    Block block{{}, 0, 0, size.h, size.w};
    block.top = randint(spec_.grid_h - size.h + slack);
    block.left = randint(spec_.grid_w - size.w + slack);
    // Constraints from the first (count - tries) targets: each relaxation drops the last remaining one.
    const int64_t constraints = avoid ? std::max<int64_t>(static_cast<int64_t>(avoid->size()) - tries, 0) : 0;
    for (int64_t r = block.top; r < block.top + size.h; ++r) {
      for (int64_t c = block.left; c < block.left + size.w; ++c) {
        bool free = true;
        for (int64_t k = 0; k < constraints && free; ++k) free = !(*avoid)[k].covers(r, c);
        if (free) block.indices.push_back(r * spec_.grid_w + c);
      }
    }
    if (static_cast<int64_t>(block.indices.size()) > spec_.min_keep) return block;
    if (--timeout == 0) {
      ++tries;
      ++relaxations_;
      timeout = kTriesBeforeRelaxing;
      // The reference warns every time; on small grids that is every few batches, so warn at 1, 10, 100, ...
      if (is_power_of_ten(relaxations_)) {
        log::warn(log::str("mask sampler: no valid context block found, dropping a target constraint [", tries, "] (",
                           relaxations_, " times so far)"));
      }
    }
  }
}

std::vector<int64_t> MultiBlockMaskSampler::cut(const std::vector<int64_t>& indices, size_t keep) {
  if (indices.size() == keep) return indices;
  if (!spec_.corrected) return {indices.begin(), indices.begin() + static_cast<std::ptrdiff_t>(keep)};
  // A uniform subset instead of the smallest indices, so no region is favoured.
  auto order = at::randperm(static_cast<int64_t>(indices.size()), positions_, torch::kInt64);
  const auto* pick = order.data_ptr<int64_t>();
  std::vector<int64_t> kept;
  kept.reserve(keep);
  for (size_t i = 0; i < keep; ++i) kept.push_back(indices[pick[i]]);
  std::sort(kept.begin(), kept.end());
  return kept;
}

BatchMasks BatchMasks::to(const torch::Device& device) const {
  BatchMasks out;
  for (const auto& m : enc) out.enc.push_back(m.to(device));
  for (const auto& m : pred) out.pred.push_back(m.to(device));
  return out;
}

BatchMasks BatchMasks::narrow(int64_t start, int64_t length) const {
  BatchMasks out;
  for (const auto& m : enc) out.enc.push_back(m.narrow(0, start, length));
  for (const auto& m : pred) out.pred.push_back(m.narrow(0, start, length));
  return out;
}

BatchMasks MultiBlockMaskSampler::sample(int64_t batch_size) {
  ++counter_;
  auto sizes = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(counter_));
  const double r_pred = at::rand({1}, sizes).item<float>();
  const BlockSize pred_size = block_size(r_pred, pred_range());
  const double r_enc = at::rand({1}, sizes).item<float>();
  const BlockSize enc_size = block_size(r_enc, enc_range());

  // [image][mask] index lists, then every list cut to the batch's shortest.
  std::vector<std::vector<std::vector<int64_t>>> pred(batch_size), enc(batch_size);
  size_t keep_pred = std::numeric_limits<size_t>::max(), keep_enc = keep_pred;
  for (int64_t b = 0; b < batch_size; ++b) {
    std::vector<Block> targets;
    for (int64_t i = 0; i < spec_.num_pred; ++i) {
      targets.push_back(sample_block(pred_size, nullptr));
      keep_pred = std::min(keep_pred, targets.back().indices.size());
      pred[b].push_back(targets.back().indices);
    }
    for (int64_t i = 0; i < spec_.num_enc; ++i) {
      Block context = sample_block(enc_size, spec_.allow_overlap ? nullptr : &targets);
      keep_enc = std::min(keep_enc, context.indices.size());
      enc[b].push_back(std::move(context.indices));
    }
  }
  BatchMasks masks;
  auto collect = [&](auto& lists, size_t keep, int64_t count, std::vector<torch::Tensor>& out) {
    for (int64_t i = 0; i < count; ++i) {
      std::vector<std::vector<int64_t>> rows;
      for (int64_t b = 0; b < batch_size; ++b) rows.push_back(cut(lists[b][i], keep));
      out.push_back(to_tensor(rows));
    }
  };
  collect(pred, keep_pred, spec_.num_pred, masks.pred);
  collect(enc, keep_enc, spec_.num_enc, masks.enc);
  return masks;
}

}  // namespace ijepa::masking
