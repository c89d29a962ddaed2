// The reference's multi-block mask sampler (MaskCollator): per batch, one target block size and one context
// block size; per image, npred target blocks, then nenc context blocks that avoid the targets.
//
// Generator use, as in the reference: block sizes come from a fresh generator seeded with the batch counter;
// block positions from the sampler's position generator (the reference uses the global one). In "reference"
// mode the sampler reproduces the reference exactly, bias included: blocks never touch the last row and column
// (randint's exclusive bound), and each batch cuts every context list to the shortest one by keeping its
// smallest indices, which favours the top rows. "corrected" mode lets blocks reach the last row and column and
// cuts by a random subset instead (reference issue #60 / PR #40).
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "masking/block_geometry.h"

namespace ijepa::masking {

struct MaskSpec {
  int64_t grid_h = 14, grid_w = 14;  // patch grid
  double enc_scale_min = 0.85, enc_scale_max = 1.0;
  double pred_scale_min = 0.15, pred_scale_max = 0.2;
  double aspect_min = 0.75, aspect_max = 1.5;
  int64_t num_enc = 1, num_pred = 4;
  int64_t min_keep = 10;  // a block is valid with MORE than min_keep patches
  bool allow_overlap = false;
  bool corrected = false;
};

struct BatchMasks {
  std::vector<torch::Tensor> enc;   // num_enc masks, each [B, Kc] int64, ascending token indices
  std::vector<torch::Tensor> pred;  // num_pred masks, each [B, Kp] int64

  // The same masks on `device` (the sampler draws them on the CPU).
  BatchMasks to(const torch::Device& device) const;
  // The masks of images [start, start + length) of the batch.
  BatchMasks narrow(int64_t start, int64_t length) const;
};

class MultiBlockMaskSampler {
 public:
  // `positions` draws the block positions (and the corrected mode's subsets); the sampler keeps a handle
  // to it, so pass a generator that no other thread uses. Throws common::InputError, naming the key, when some
  // draw of a block size gives a block that can never hold more than min_keep patches.
  MultiBlockMaskSampler(const MaskSpec& spec, at::Generator positions);

  // Masks for the next batch; advances the batch counter.
  BatchMasks sample(int64_t batch_size);

  // The reference's block size on this grid for one uniform number r: scale and aspect share r.
  BlockSize block_size(double r, const BlockRange& range) const;
  // The spec's target blocks (pred scale and aspect) and context block (enc scale, square).
  BlockRange pred_range() const {
    return {spec_.pred_scale_min, spec_.pred_scale_max, spec_.aspect_min, spec_.aspect_max};
  }
  BlockRange enc_range() const { return {spec_.enc_scale_min, spec_.enc_scale_max, 1.0, 1.0}; }

  // Exact-resume state: the batch counter (the next batch uses counter + 1) and the position generator.
  int64_t counter() const { return counter_; }
  void set_counter(int64_t counter) { counter_ = counter; }
  at::Generator& position_generator() { return positions_; }
  // Times a context block had to drop a target constraint after 20 failed draws (the reference warns).
  int64_t relaxations() const { return relaxations_; }

 private:
  struct Block {
    std::vector<int64_t> indices;  // ascending
    int64_t top, left, h, w;
    bool covers(int64_t row, int64_t col) const { return row >= top && row < top + h && col >= left && col < left + w; }
  };
  // One block of `size`, valid with more than min_keep patches outside the first targets of `avoid`.
  Block sample_block(BlockSize size, const std::vector<Block>* avoid);
  int64_t randint(int64_t high);  // [0, high) from the position generator, as torch.randint
  std::vector<int64_t> cut(const std::vector<int64_t>& indices, size_t keep);

  MaskSpec spec_;
  at::Generator positions_;
  int64_t counter_ = -1;
  int64_t relaxations_ = 0;
};

}  // namespace ijepa::masking
