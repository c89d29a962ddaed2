// ijepa-bench: speed measurements.
//   ijepa-bench step --workload a|b --dtype fp32|bf16 --threads N --steps K [--warmup W] [--device cpu|cuda] [--json]
//                    [--profile [--trace FILE]]
//       the whole training step of a benchmark workload (see lib/train/step_benchmark.h)
//   ijepa-bench micro [--benchmark_filter=...]
//       Google Benchmark micro-benchmarks: matrix products, mask sampling, the fused residual add and LayerNorm,
//       the attention's bf16 softmax, the patch embedding's rows, GELU and its backward, the fp32 linear, the fused
//       AdamW and the EMA
#include <ATen/CPUGeneratorImpl.h>
#include <benchmark/benchmark.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>

#include "common/malloc_tuning.h"
#include "common/omp_wait.h"
#include "masking/multiblock.h"
#include "model/autocast.h"
#include "model/gelu.h"
#include "model/linear.h"
#include "model/patch_rows.h"
#include "model/residual_norm.h"
#include "model/softmax.h"
#include "train/optimizer.h"
#include "train/step.h"
#include "train/step_benchmark.h"

namespace {

using ijepa::train::StepBenchOptions;

void print_step(const StepBenchOptions& o, const ijepa::train::StepBenchResult& r, bool json) {
  const nlohmann::json j = {{"workload", std::string(1, o.workload)},
                            {"dtype", o.bf16 ? "bf16" : "fp32"},
                            {"threads", o.threads},
                            {"device", o.device},
                            {"steps", o.steps},
                            {"batch", r.batch},
                            {"images_per_second", r.images_per_second},
                            {"step_ms", r.step_ms},
                            {"flops_per_image", r.flops_per_image},
                            {"achieved_flops", r.achieved_flops},
                            {"matmul_flops", r.matmul_flops},
                            {"matmul_fraction", r.achieved_flops / r.matmul_flops},
                            {"masks_ms", r.masks_ms},
                            {"forward_backward_ms", r.forward_backward_ms},
                            {"update_ms", r.update_ms},
                            {"outside_forward_backward_share", r.outside_share},
                            {"context_tokens", r.context_tokens},
                            {"target_tokens", r.target_tokens},
                            {"peak_rss_bytes", r.peak_rss_bytes},
                            {"malloc", ijepa::common::malloc_tuning_description()}};
  if (json) {
    std::cout << j.dump() << std::endl;
    return;
  }
  std::cout << "workload " << o.workload << " " << (o.bf16 ? "bf16" : "fp32") << " threads " << o.threads << ": "
            << r.images_per_second << " img/s, " << r.step_ms << " ms/step (masks " << r.masks_ms << ", fwd+bwd "
            << r.forward_backward_ms << ", update " << r.update_ms << "), " << r.achieved_flops / 1e9 << " GFLOP/s of "
            << r.matmul_flops / 1e9 << " matmul GFLOP/s" << std::endl;
}

// One intra-op thread while in scope, for the micro-benchmarks that time one thread's kernels; the caller's count
// is restored at the end.
class OneThread {
 public:
  OneThread() : threads_(at::get_num_threads()) { at::set_num_threads(1); }
  ~OneThread() { at::set_num_threads(threads_); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int threads_;
};

void BM_Matmul(benchmark::State& state) {
  const bool bf16 = state.range(0) != 0;
  const int64_t n = state.range(1);
  const auto options = torch::TensorOptions().dtype(bf16 ? torch::kBFloat16 : torch::kFloat32);
  auto a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  for (auto _ : state) benchmark::DoNotOptimize(torch::mm(a, b));
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Matmul)->ArgsProduct({{0, 1}, {512, 2048}})->ArgNames({"bf16", "n"})->Unit(benchmark::kMillisecond);

void BM_MaskSampling(benchmark::State& state) {
  ijepa::masking::MaskSpec spec;
  spec.grid_h = spec.grid_w = state.range(0);
  spec.min_keep = 4;
  ijepa::masking::MultiBlockMaskSampler sampler(spec, at::make_generator<at::CPUGeneratorImpl>(0));
  for (auto _ : state) benchmark::DoNotOptimize(sampler.sample(state.range(1)));
  state.SetItemsProcessed(state.iterations() * state.range(1));
}
BENCHMARK(BM_MaskSampling)->Args({7, 64})->Args({14, 16})->ArgNames({"grid", "batch"})->Unit(benchmark::kMicrosecond);

// One residual add and the LayerNorm after it under CPU bf16 autocast, forward (backward 0) or forward and
// backward (1), on one thread: ATen's ops as the reference runs them (fused 0) or model/residual_norm.h (fused 1).
// 3136 rows of 192: a full batch of either workload's target encoder (64 images x 49 tokens, 16 x 196).
void BM_ResidualNorm(benchmark::State& state) {
  const bool fused = state.range(0) != 0;
  const int64_t rows = state.range(1), width = 192;
  const bool backward = state.range(2) != 0;
  const OneThread one_thread;
  torch::manual_seed(0);
  torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({width}).eps(1e-6));
  const auto x = torch::randn({rows, width}).requires_grad_();
  const auto branch = torch::randn({rows, width}).to(torch::kBFloat16).requires_grad_();
  const auto downstream = torch::randn({rows, width}).to(torch::kBFloat16);
  const ijepa::model::AutocastGuard autocast(c10::DeviceType::CPU, true);
  for (auto _ : state) {
    torch::Tensor residual, normed;
    if (fused) {
      auto out = ijepa::model::residual_layer_norm(x, branch, norm, torch::kBFloat16);
      residual = out.residual;
      normed = out.normed;
    } else {
      residual = x + branch;
      normed = norm(residual).to(torch::kBFloat16);
    }
    // Both outputs used, as in a block: the normed one by the next linear, the residual by the next add.
    if (backward) torch::autograd::backward({normed, residual}, {downstream, torch::ones_like(residual)});
  }
  state.SetItemsProcessed(state.iterations() * rows);
}
BENCHMARK(BM_ResidualNorm)
    ->ArgsProduct({{0, 1}, {3136}, {0, 1}})
    ->ArgNames({"fused", "rows", "backward"})
    ->Unit(benchmark::kMicrosecond);

// The attention's softmax of bf16 scores, forward only, on one thread: ATen's (ours 0) or model/softmax.h's
// (ours 1). [48, 196, 196]: a (b) target encoder layer over 16 images of 3 heads; [192, 109, 109]: a predictor
// layer of (b) (64 sequences of 3 heads, about 109 tokens).
void BM_AttentionSoftmax(benchmark::State& state) {
  const bool ours = state.range(0) != 0;
  const int64_t sequences = state.range(1), tokens = state.range(2);
  const OneThread one_thread;
  torch::manual_seed(0);
  const auto scores = (4.0 * torch::randn({sequences, tokens, tokens})).to(torch::kBFloat16);
  for (auto _ : state) {
    benchmark::DoNotOptimize(ours ? ijepa::model::last_dim_softmax(scores) : torch::softmax(scores, -1));
  }
  state.SetItemsProcessed(state.iterations() * scores.numel());
}
BENCHMARK(BM_AttentionSoftmax)
    ->ArgsProduct({{0, 1}, {48}, {196}})
    ->ArgsProduct({{0, 1}, {192}, {109}})
    ->ArgNames({"ours", "sequences", "tokens"})
    ->Unit(benchmark::kMicrosecond);

// The patch embedding's input rows of a (b) batch (16 images, 3 x 224 x 224, patch 16) in bf16, on one thread:
// ATen's copy of the permuted image, then its cast (ours 0), or model/patch_rows.h's one pass (ours 1).
void BM_PatchRows(benchmark::State& state) {
  const bool ours = state.range(0) != 0;
  const OneThread one_thread;
  torch::manual_seed(0);
  const int64_t p = 16;
  const auto images = torch::randn({16, 3, 224, 224});
  for (auto _ : state) {
    if (ours) {
      benchmark::DoNotOptimize(ijepa::model::patch_rows(images, p, torch::kBFloat16));
    } else {
      benchmark::DoNotOptimize(images.reshape({16, 3, 14, p, 14, p})
                                   .permute({0, 2, 4, 1, 3, 5})
                                   .reshape({16, 196, 3 * p * p})
                                   .to(torch::kBFloat16));
    }
  }
  state.SetItemsProcessed(state.iterations() * images.numel());
}
BENCHMARK(BM_PatchRows)->Arg(0)->Arg(1)->ArgName("ours")->Unit(benchmark::kMicrosecond);

// GELU of the MLP's bf16 hidden layer where nothing is recorded, on one thread: ATen's (ours 0) or model/gelu.h's
// table (ours 1). [1568, 768]: the target encoder's hidden layer for one part of (b)'s batch (8 images of 196 tokens).
void BM_GeluForward(benchmark::State& state) {
  const bool ours = state.range(0) != 0;
  const OneThread one_thread;
  torch::manual_seed(0);
  const auto x = (2 * torch::randn({1568, 768})).to(torch::kBFloat16);
  const torch::NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(ours ? ijepa::model::exact_gelu(x) : at::gelu(x));
  state.SetItemsProcessed(state.iterations() * x.numel());
}
BENCHMARK(BM_GeluForward)->Arg(0)->Arg(1)->ArgName("ours")->Unit(benchmark::kMicrosecond);

// GELU's backward of the MLP's bf16 hidden layer, on one thread: ATen's (ours 0) or model/gelu.h's table (ours 1).
// [3392, 384]: a predictor layer of (b), one part of the batch (32 sequences of 106 tokens).
void BM_GeluBackward(benchmark::State& state) {
  const bool ours = state.range(0) != 0;
  const OneThread one_thread;
  torch::manual_seed(0);
  const auto x = (2 * torch::randn({3392, 384})).to(torch::kBFloat16).requires_grad_();
  const auto upstream = torch::randn({3392, 384}).to(torch::kBFloat16);
  const auto y = ijepa::model::exact_gelu(x);
  for (auto _ : state) {
    if (ours) {
      benchmark::DoNotOptimize(torch::autograd::grad({y}, {x}, {upstream}, /*retain_graph=*/true)[0]);
    } else {
      benchmark::DoNotOptimize(at::gelu_backward(upstream, x.detach()));
    }
  }
  state.SetItemsProcessed(state.iterations() * x.numel());
}
BENCHMARK(BM_GeluBackward)->Arg(0)->Arg(1)->ArgName("ours")->Unit(benchmark::kMicrosecond);

// An fp32 linear's forward and backward (input and weight gradients) on one thread: ATen's (ours 0, MKL's sgemm) or
// model/linear.h's (ours 1, oneDNN's kernel for the product and the input's gradient). Rows, inputs and outputs of
// (b)'s layers for one part of the batch: the qkv and MLP layers of an encoder over 8 images of 196 tokens, and the
// predictor's MLP over 32 sequences of 106.
void BM_LinearFp32(benchmark::State& state) {
  const bool ours = state.range(0) != 0;
  const int64_t rows = state.range(1), in = state.range(2), out = state.range(3);
  const OneThread one_thread;
  torch::manual_seed(0);
  torch::nn::Linear layer(in, out);
  const auto x = torch::randn({rows, in}).requires_grad_();
  const auto upstream = torch::randn({rows, out});
  for (auto _ : state) {
    const auto y = ours ? ijepa::model::linear(layer, x) : at::linear(x, layer->weight, layer->bias);
    benchmark::DoNotOptimize(torch::autograd::grad({y}, {x, layer->weight, layer->bias}, {upstream}));
  }
  const double flops = 3.0 * 2 * static_cast<double>(rows * in * out);  // the three products
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LinearFp32)
    ->ArgsProduct({{0, 1}, {1568}, {192}, {576}})
    ->ArgsProduct({{0, 1}, {1568}, {192}, {768}})
    ->ArgsProduct({{0, 1}, {1568}, {768}, {192}})
    ->ArgsProduct({{0, 1}, {3392}, {96}, {384}})
    ->ArgsProduct({{0, 1}, {3392}, {384}, {96}})
    ->ArgNames({"ours", "rows", "in", "out"})
    ->Unit(benchmark::kMicrosecond);

// The update phase of workload a: the fused AdamW over the four groups, then the EMA.
void BM_UpdateTiny(benchmark::State& state) {
  torch::manual_seed(0);
  const auto enc = ijepa::model::vit_preset("vit_tiny", 28, 4, 1);
  auto models = ijepa::train::build_jepa_models(enc, ijepa::model::predictor_for(enc, 96, 6), torch::kCPU);
  ijepa::train::AdamW optimizer(ijepa::train::reference_param_groups(*models.encoder, *models.predictor));
  auto params = optimizer.all_params();
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) grads.push_back(torch::randn_like(p));
  ijepa::train::JepaStep step(models, optimizer, false);
  for (auto _ : state) {
    // update() hands the gradients back (zero_grad); each step gets them again, untimed.
    state.PauseTiming();
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = grads[i];
    state.ResumeTiming();
    step.update(1e-3, 0.04, 0.996);
  }
}
BENCHMARK(BM_UpdateTiny)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  ijepa::common::choose_omp_wait_policy(argv);  // see common/omp_wait.h
  ijepa::common::keep_freed_memory();           // see common/malloc_tuning.h
  if (argc >= 2 && std::string(argv[1]) == "micro") {
    argv[1] = argv[0];
    --argc, ++argv;
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
  }
  CLI::App app{"ijepa speed measurements"};
  app.require_subcommand(1);
  auto* step = app.add_subcommand("step", "time the whole training step of a benchmark workload");
  StepBenchOptions o;
  std::string workload = "a", dtype = "bf16";
  bool json = false;
  step->add_option("--workload", workload, "a (28x28x1, batch 64) or b (224x224x3, batch 16)")
      ->check(CLI::IsMember({"a", "b"}));
  step->add_option("--dtype", dtype, "fp32 or bf16 (autocast)")->check(CLI::IsMember({"fp32", "bf16"}));
  step->add_option("--threads", o.threads, "intra-op threads")->check(CLI::PositiveNumber);
  step->add_option("--steps", o.steps, "timed steps")->check(CLI::PositiveNumber);
  step->add_option("--warmup", o.warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  step->add_option("--device", o.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  step->add_flag("--json", json, "one JSON object on stdout");
  step->add_flag("--profile", o.profile, "print the timed steps' ops by self time (stderr)");
  step->add_option("--trace", o.trace_path,
                   "with --profile: also write a Chrome trace (with input shapes) to this file");
  app.add_subcommand("micro", "Google Benchmark micro-benchmarks (pass --benchmark_* flags after it)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  o.workload = workload[0];
  o.bf16 = dtype == "bf16";
  if (o.bf16 && o.device == "cpu" && ijepa::model::bf16_is_slow(c10::DeviceType::CPU)) {
    std::cerr << "ijepa-bench: warning: " << ijepa::model::kSlowBf16Reason
              << ", so a bf16 step measures that fallback\n";
  }
  try {
    const auto result = ijepa::train::run_step_benchmark(o);
    print_step(o, result, json);
    if (o.profile) std::cerr << result.profile_table;
  } catch (const std::exception& e) {
    std::cerr << "ijepa-bench: error: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
