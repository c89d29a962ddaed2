// The mask sampler against the reference's measured index lists, and the corrected mode's promises.
#include "masking/multiblock.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "common/errors.h"
#include "golden.h"

namespace ijepa::masking {
namespace {

using ijepa::testing::golden;

MaskSpec spec_for(int64_t img, int64_t patch, int64_t min_keep) {
  MaskSpec s;
  s.grid_h = s.grid_w = img / patch;
  s.min_keep = min_keep;
  return s;
}

std::vector<std::vector<int64_t>> rows_of(const torch::Tensor& t) {
  std::vector<std::vector<int64_t>> rows;
  for (int64_t i = 0; i < t.size(0); ++i) {
    auto r = t[i].contiguous();
    rows.emplace_back(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
  }
  return rows;
}

void expect_masks(const BatchMasks& m, const nlohmann::json& enc, const nlohmann::json& pred, const std::string& what) {
  ASSERT_EQ(m.enc.size(), enc.size()) << what;
  ASSERT_EQ(m.pred.size(), pred.size()) << what;
  for (size_t i = 0; i < enc.size(); ++i)
    EXPECT_EQ(rows_of(m.enc[i]), enc[i].get<std::vector<std::vector<int64_t>>>()) << what << " enc " << i;
  for (size_t i = 0; i < pred.size(); ++i)
    EXPECT_EQ(rows_of(m.pred[i]), pred[i].get<std::vector<std::vector<int64_t>>>()) << what << " pred " << i;
}

TEST(MaskGolden, BlockSizesMatchTheReference) {
  for (const auto& [name, grid] : {std::pair{"grid16", 16}, {"grid14", 14}, {"grid7", 7}}) {
    MaskSpec s = spec_for(grid, 1, 4);  // min_keep plays no part in the sizes (10 would not fit grid 7)
    MultiBlockMaskSampler sampler(s, at::make_generator<at::CPUGeneratorImpl>(0));
    for (const auto& entry : golden()["block_sizes"][name]) {
      auto g = at::make_generator<at::CPUGeneratorImpl>(entry["seed"].get<uint64_t>());
      const double r1 = at::rand({1}, g).item<float>();
      const double r2 = at::rand({1}, g).item<float>();
      const auto p = sampler.block_size(r1, sampler.pred_range());
      const auto e = sampler.block_size(r2, sampler.enc_range());
      EXPECT_EQ((std::vector<int64_t>{p.h, p.w}), entry["pred_hw"].get<std::vector<int64_t>>()) << name;
      EXPECT_EQ((std::vector<int64_t>{e.h, e.w}), entry["enc_hw"].get<std::vector<int64_t>>()) << name;
    }
  }
}

TEST(MaskGolden, IndexListsMatchTheReferenceGivenTheSameGenerator) {
  for (const auto& spec : golden()["masks"]) {
    torch::manual_seed(0);  // the reference drew positions from the global generator after manual_seed(0)
    MultiBlockMaskSampler sampler(spec_for(spec["img"], spec["patch"], spec["min_keep"]),
                                  at::detail::getDefaultCPUGenerator());
    for (const auto& call : spec["calls"]) {
      const auto m = sampler.sample(spec["batch"].get<int64_t>());
      expect_masks(
          m, call["enc"], call["pred"],
          "img " + std::to_string(spec["img"].get<int>()) + " call " + std::to_string(call["call"].get<int>()));
    }
  }
}

TEST(MaskSampler, ReferenceModeNeverTouchesTheLastRowOrColumnAndCorrectedModeDoes) {
  for (bool corrected : {false, true}) {
    MaskSpec s = spec_for(28, 4, 4);
    s.corrected = corrected;
    MultiBlockMaskSampler sampler(s, at::make_generator<at::CPUGeneratorImpl>(7));
    bool touched = false;
    for (int i = 0; i < 50; ++i) {
      const auto m = sampler.sample(8);
      for (const auto& t : m.pred) {
        auto rows = t.div(7, "floor"), cols = t.remainder(7);
        touched |= (rows == 6).any().item<bool>() || (cols == 6).any().item<bool>();
      }
    }
    EXPECT_EQ(touched, corrected) << (corrected ? "corrected" : "reference");
  }
}

TEST(MaskSampler, ContextAvoidsTargetsAndListsAreCutToTheShortest) {
  MaskSpec s = spec_for(224, 16, 10);
  MultiBlockMaskSampler sampler(s, at::make_generator<at::CPUGeneratorImpl>(3));
  const auto m = sampler.sample(16);
  ASSERT_EQ(m.enc.size(), 1u);
  ASSERT_EQ(m.pred.size(), 4u);
  const auto ctx = m.enc[0];
  EXPECT_EQ(ctx.size(0), 16);
  EXPECT_GT(ctx.size(1), 10);
  for (int64_t b = 0; b < 16; ++b) {
    for (const auto& t : m.pred) {
      EXPECT_EQ(at::isin(ctx[b], t[b]).sum().item<int64_t>(), 0) << "context overlaps a target, image " << b;
    }
    EXPECT_TRUE(torch::equal(std::get<0>(ctx[b].sort()), ctx[b])) << "indices must ascend";
  }
}

TEST(MaskSampler, CorrectedCutIsNotBiasedTowardTheTopRows) {
  // Averaged over many batches, the mean row of kept context tokens: the reference's cut drags it upward.
  auto mean_row = [](bool corrected) {
    MaskSpec s = spec_for(224, 16, 10);
    s.corrected = corrected;
    MultiBlockMaskSampler sampler(s, at::make_generator<at::CPUGeneratorImpl>(11));
    double sum = 0;
    int64_t n = 0;
    for (int i = 0; i < 20; ++i) {
      const auto ctx = sampler.sample(32).enc[0];
      sum += ctx.div(14, "floor").sum().item<double>();
      n += ctx.numel();
    }
    return sum / static_cast<double>(n);
  };
  const double reference = mean_row(false), corrected = mean_row(true);
  EXPECT_LT(reference, 5.5);  // the top-left 13x13 context block minus targets, cut from the top
  EXPECT_GT(corrected, reference + 0.5);
}

TEST(MaskSampler, StateRoundTripRepeatsTheSameMasks) {
  MaskSpec s = spec_for(28, 4, 4);
  MultiBlockMaskSampler a(s, at::make_generator<at::CPUGeneratorImpl>(5));
  a.sample(4);
  const auto counter = a.counter();
  const auto state = a.position_generator().get_state();
  const auto next = a.sample(4);
  MultiBlockMaskSampler b(s, at::make_generator<at::CPUGeneratorImpl>(99));
  b.set_counter(counter);
  b.position_generator().set_state(state);
  const auto again = b.sample(4);
  for (size_t i = 0; i < next.pred.size(); ++i) EXPECT_TRUE(torch::equal(next.pred[i], again.pred[i]));
  EXPECT_TRUE(torch::equal(next.enc[0], again.enc[0]));
}

// Blocks of 4 patches on a 7x7 grid can never exceed min_keep 4: the reference retries such a draw forever
// (a hang at some batch), the sampler refuses the spec at construction, naming the key.
TEST(MaskSampler, RejectsScalesWhoseBlocksCanNeverExceedMinKeep) {
  MaskSpec s = spec_for(28, 4, 4);
  s.pred_scale_min = 0.1;
  s.pred_scale_max = 0.15;
  try {
    MultiBlockMaskSampler sampler(s, at::make_generator<at::CPUGeneratorImpl>(0));
    FAIL() << "expected an InputError";
  } catch (const common::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("mask.pred_mask_scale: some draws give a 2x2 block of 7x7 patches"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("mask.min_keep = 4"), std::string::npos) << e.what();
  }
  s.pred_scale_min = 0.15;  // the quickstart's scales: the smallest block is 2x3
  EXPECT_NO_THROW(MultiBlockMaskSampler(s, at::make_generator<at::CPUGeneratorImpl>(0)));
  s.min_keep = 49;
  s.enc_scale_min = 0.85;
  EXPECT_THROW(MultiBlockMaskSampler(s, at::make_generator<at::CPUGeneratorImpl>(0)), common::InputError);
}

}  // namespace
}  // namespace ijepa::masking
