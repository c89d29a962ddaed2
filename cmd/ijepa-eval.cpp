// ijepa-eval: linear probe and kNN accuracy of a frozen I-JEPA encoder (a checkpoint of ours or of the
// reference, or a safetensors export), of the same architecture at random initialisation, or of raw pixels;
// also exports an encoder to safetensors. --json prints one JSON document on stdout; people's output (logs,
// progress) goes to stderr. Exit 0 done, 2 bad input, 1 any other failure.
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/errors.h"
#include "common/logging.h"
#include "common/malloc_tuning.h"
#include "common/omp_wait.h"
#include "eval/command.h"

int main(int argc, char** argv) {
  ijepa::common::choose_omp_wait_policy(argv);  // see common/omp_wait.h
  ijepa::common::keep_freed_memory();           // see common/malloc_tuning.h
  ijepa::eval::EvalCommandOptions o;
  auto& e = o.eval;
  CLI::App app{"ijepa-eval: linear probe and kNN on frozen I-JEPA features"};
  auto* source = app.add_option_group("source", "what to evaluate");
  source->add_option("--checkpoint", o.checkpoint, "checkpoint (.pth.tar, ours or the reference's) or .safetensors");
  source->add_flag("--random-init", o.random_init,
                   "the same architecture at its reference initialisation (from --checkpoint or --model)");
  source->add_flag("--raw-pixels", o.raw_pixels, "normalised raw pixels (baseline)");
  source->require_option(1, 2);
  app.add_option("--encoder", o.encoder, "target | context (a .safetensors export holds the one it was made from)")
      ->capture_default_str();
  app.add_option("--model", o.hints.model_name, "vit_tiny ... vit_giant (checked against the checkpoint)");
  app.add_option("--patch-size", o.hints.patch_size, "patch size (checked against the checkpoint)");
  app.add_option("--num-heads", o.hints.num_heads, "attention heads, for widths outside the reference's sizes");
  app.add_option("--crop-size", o.crop_size, "image side for --raw-pixels and --random-init --model (default: native)");
  app.add_option("--seed", o.seed, "torch seed of --random-init")->capture_default_str();
  app.add_option("--export-safetensors", o.export_safetensors, "write the encoder to this .safetensors file");

  app.add_option("--dataset", o.dataset, "idx | cifar10 | cifar100 | imagefolder");
  app.add_option("--data-path", o.data_path, "folder of the dataset (train and test splits)");
  app.add_option("--protocol", o.protocol, "linear | knn | both")->capture_default_str();
  app.add_option("--pooling", o.pooling,
                 "avg (last layer) | avg4 (last 4 layers, concatenated) | grid (last layer's token map, <= 7x7 cells)")
      ->capture_default_str();
  app.add_option("--max-train", e.max_train_samples, "train samples, spread over the split (0: all)")
      ->capture_default_str();
  app.add_option("--max-test", e.max_test_samples, "test samples, spread over the split (0: all)")
      ->capture_default_str();
  app.add_option("--batch-size", e.batch_size, "feature-extraction batch")->capture_default_str();
  app.add_option("--workers", e.num_workers, "decoding threads")->capture_default_str();
  app.add_option("--threads", o.threads, "intra-op threads (0: the runtime's default)")->capture_default_str();
  app.add_option("--device", o.device, "cpu | cuda")->capture_default_str();
  app.add_option("--dtype", o.dtype, "fp32 | bf16 (feature extraction)")->capture_default_str();
  app.add_flag("--batchnorm", e.linear.batchnorm, "BatchNorm (no affine) before the linear head");
  app.add_option("--epochs", e.linear.epochs, "linear probe epochs")->capture_default_str();
  app.add_option("--lr", e.linear.lr, "linear probe peak learning rate (AdamW, cosine)")->capture_default_str();
  app.add_option("--weight-decay", e.linear.weight_decay, "linear probe weight decay")->capture_default_str();
  app.add_option("--probe-batch-size", e.linear.batch_size, "linear probe batch")->capture_default_str();
  app.add_option("--k", e.knn.k, "kNN neighbours")->capture_default_str();
  app.add_option("--temperature", e.knn.temperature, "kNN vote temperature")->capture_default_str();
  app.add_flag("--json", o.json, "print one JSON document on stdout");
  bool quiet = false;
  app.add_flag("--quiet", quiet, "no progress bar");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);  // --help
    std::cerr << "ijepa-eval: " << error.what() << " (see --help)\n";
    return 2;
  }
  o.progress = !quiet;

  ijepa::common::init_logging(0);
  try {
    return ijepa::eval::run_eval_command(o, std::cout, std::cerr);
  } catch (const ijepa::common::InputError& error) {
    std::cerr << "ijepa-eval: " << error.what() << "\n";
    return 2;
  } catch (const std::exception& error) {
    const std::string what = error.what();
    std::cerr << "ijepa-eval: " << what.substr(0, what.find('\n')) << "\n";
    return 1;
  }
}
