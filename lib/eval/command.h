// ijepa-eval's work, as a library so that tests can drive it and the main stays thin: pick the features
// (a checkpoint's encoder, the same architecture at its reference initialisation, or raw pixels), optionally
// export the encoder to safetensors, run the probes, and print the result.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "eval/encoder_io.h"
#include "eval/evaluate.h"

namespace ijepa::eval {

struct EvalCommandOptions {
  std::string checkpoint;          // .pth.tar (reference or ours) or .safetensors
  bool random_init = false;        // the checkpoint's architecture (or --model's) at the reference init, seed `seed`
  bool raw_pixels = false;         // normalised pixels at crop_size
  std::string encoder = "target";  // target | context
  ModelHints hints;                // --model, --patch-size, --num-heads
  int64_t crop_size = 0;           // random init without checkpoint, raw pixels: 0 = the images' own size
  uint64_t seed = 0;
  std::string export_safetensors;  // write the encoder here first; evaluate only if a dataset is given

  std::string dataset;  // idx | cifar10 | cifar100 | imagefolder
  std::string data_path;
  std::string protocol = "both";
  std::string pooling = "avg";
  std::string device = "cpu";  // cpu | cuda
  std::string dtype = "fp32";  // fp32 | bf16 (feature extraction)
  int64_t threads = 0;         // intra-op threads; 0: the runtime's default
  bool json = false;           // one JSON document on `out`; people's output on `err` only
  bool progress = true;
  EvalOptions eval;  // sizes, probe settings (protocol, pooling, device, bf16 are filled from the strings)
};

// Runs the command; returns the exit code (0). Throws common::InputError for bad input (missing or corrupt
// checkpoint or dataset, model mismatch, inconsistent flags), anything else for failures.
int run_eval_command(const EvalCommandOptions& options, std::ostream& out, std::ostream& err);

}  // namespace ijepa::eval
