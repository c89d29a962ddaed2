// ijepa-eval as users run it: JSON alone on stdout, exit 2 with one clear line for bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "data/data_test_util.h"
#include "test_util.h"

namespace {

using ijepa::testing::TempDir;

const std::string kReferenceCheckpoint = ijepa::testing::shared_path("reference/checkpoint/jepa-latest.pth.tar");

struct Run {
  int code = -1;
  std::string out, err;
};

Run run_eval(const TempDir& dir, const std::string& args) {
  const std::string out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string command = std::string(IJEPA_BIN_DIR) + "/ijepa-eval " + args + " --quiet >" + out + " 2>" + err;
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ijepa::testing::read_file(out), ijepa::testing::read_file(err)};
}

std::string last_line(const std::string& text) {
  std::istringstream in(text);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

void expect_bad_input(const Run& r, const std::string& mentions) {
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  const std::string line = last_line(r.err);
  EXPECT_EQ(line.rfind("ijepa-eval: ", 0), 0u) << r.err;
  EXPECT_NE(line.find(mentions), std::string::npos) << r.err;
}

// CIFAR-100 binary train.bin / test.bin with n and m records whose fine label is the record index mod 5.
std::string write_cifar100(const TempDir& dir, int n, int m) {
  auto records = [](int count, int seed) {
    std::string bytes;
    for (int i = 0; i < count; ++i) {
      bytes += ijepa::data::testing::cifar_record({0, static_cast<uint8_t>(i % 5)}, seed + 40 * (i % 5) + i % 3);
    }
    return bytes;
  };
  const std::string folder = dir / "cifar";
  ijepa::testing::write_file(folder + "/train.bin", records(n, 0));
  ijepa::testing::write_file(folder + "/test.bin", records(m, 1));
  return folder;
}

TEST(EvalCli, CheckpointJsonOnStdoutWithExport) {
  TempDir dir;
  const std::string cifar = write_cifar100(dir, 30, 10);
  const auto r =
      run_eval(dir, "--checkpoint " + kReferenceCheckpoint + " --num-heads 2 --dataset cifar100 --data-path " + cifar +
                        " --epochs 3 --json --export-safetensors " + (dir / "enc.safetensors"));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);  // stdout is one JSON document, nothing else
  EXPECT_EQ(report["source"], "checkpoint");
  EXPECT_EQ(report["encoder"], "target");
  EXPECT_EQ(report["checkpoint"]["format"], "reference");
  EXPECT_EQ(report["model"]["embed_dim"], 64);
  EXPECT_EQ(report["train_samples"], 30);
  EXPECT_EQ(report["test_samples"], 10);
  EXPECT_EQ(report["num_classes"], 100);
  EXPECT_EQ(report["train_skipped"], 0);
  for (const char* probe : {"linear", "knn"}) {
    const double top1 = report[probe]["top1"];
    EXPECT_GE(top1, 0.0);
    EXPECT_LE(top1, 1.0);
  }
  // The export holds the same encoder: the same features, so the same scores.
  const auto exported = run_eval(dir, "--checkpoint " + (dir / "enc.safetensors") + " --dataset cifar100 --data-path " +
                                          cifar + " --epochs 3 --json");
  ASSERT_EQ(exported.code, 0) << exported.err;
  const auto again = nlohmann::json::parse(exported.out);
  EXPECT_EQ(again["checkpoint"]["format"], "safetensors");
  EXPECT_EQ(again["model"], report["model"]);
  EXPECT_EQ(again["linear"]["top1"], report["linear"]["top1"]);
  EXPECT_EQ(again["linear"]["train_top1"], report["linear"]["train_top1"]);
  EXPECT_EQ(again["knn"]["top1"], report["knn"]["top1"]);
  // It holds the target encoder only.
  expect_bad_input(run_eval(dir, "--checkpoint " + (dir / "enc.safetensors") +
                                     " --encoder context --dataset cifar100 --data-path " + cifar),
                   "holds the target encoder only");
}

TEST(EvalCli, UnreadableImagesAreCountedInTheReport) {
  TempDir dir;
  using ijepa::data::testing::encode_png;
  for (const char* file : {"train/a/1.png", "train/a/2.png", "train/b/3.png", "val/a/4.png", "val/b/5.png"}) {
    ijepa::testing::write_file(dir / file, encode_png(8, 8, PNG_COLOR_TYPE_GRAY, 8, std::vector<uint8_t>(64, 7)));
  }
  ijepa::testing::write_file(dir / "train/b/bad.png", "\x89PNG\r\n\x1A\n but nothing more");
  const std::string args =
      "--raw-pixels --dataset imagefolder --crop-size 8 --protocol knn --data-path " + dir.path().string();
  auto r = run_eval(dir, args + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["train_samples"], 4) << "the unreadable one is replaced by its neighbour";
  EXPECT_EQ(report["train_skipped"], 1);
  EXPECT_EQ(report["test_skipped"], 0);
  EXPECT_NE(r.err.find(dir / "train/b/bad.png"), std::string::npos) << r.err;
  r = run_eval(dir, args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("4 train, 2 test (unreadable, each replaced by its next readable neighbour: 1 train, 0 test)"),
            std::string::npos)
      << r.out;
}

TEST(EvalCli, BaselinesRandomInitAndRawPixels) {
  TempDir dir;
  const std::string cifar = write_cifar100(dir, 20, 10);
  auto r =
      run_eval(dir, "--random-init --checkpoint " + kReferenceCheckpoint +
                        " --num-heads 2 --dataset cifar100 --protocol knn --pooling avg4 --json --data-path " + cifar);
  ASSERT_EQ(r.code, 0) << r.err;
  auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["source"], "random_init");
  EXPECT_EQ(report["feature_dim"], 2 * 64) << "avg4 of a depth-2 encoder";
  EXPECT_FALSE(report.contains("linear"));

  std::filesystem::create_directories(dir / "idx");
  ijepa::data::testing::write_idx_pair(dir / "idx", "train", 30, 28, 28, true);
  ijepa::data::testing::write_idx_pair(dir / "idx", "t10k", 10, 28, 28, false);
  r = run_eval(dir, "--raw-pixels --dataset idx --epochs 2 --json --data-path " + (dir / "idx"));
  ASSERT_EQ(r.code, 0) << r.err;
  report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["feature_dim"], 28 * 28);
  EXPECT_EQ(report["crop_size"], 28);

  r = run_eval(
      dir, "--random-init --model vit_tiny --patch-size 14 --dataset idx --protocol knn --data-path " + (dir / "idx"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("knn top-1: "), std::string::npos) << r.out;

  r = run_eval(dir,
               "--random-init --model vit_tiny --patch-size 14 --dataset idx --protocol knn --pooling grid "
               "--json --data-path " +
                   (dir / "idx"));
  ASSERT_EQ(r.code, 0) << r.err;
  report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["pooling"], "grid");
  EXPECT_EQ(report["feature_dim"], 192 * 2 * 2) << "the 2x2 token map of 28x28 images in 14x14 patches";
}

TEST(EvalCli, BadInputExitsTwoWithOneLine) {
  TempDir dir;
  const std::string cifar = write_cifar100(dir, 4, 2);
  const std::string dataset = " --dataset cifar100 --data-path " + cifar;
  expect_bad_input(run_eval(dir, "--checkpoint " + (dir / "none.pth.tar") + dataset), "none.pth.tar");
  ijepa::testing::write_file(dir / "noise.pth.tar", std::string(5000, 'x'));
  expect_bad_input(run_eval(dir, "--checkpoint " + (dir / "noise.pth.tar") + dataset), "noise.pth.tar");
  const std::string reference = "--checkpoint " + kReferenceCheckpoint + " --num-heads 2";
  expect_bad_input(run_eval(dir, reference + " --dataset cifar100 --data-path " + (dir / "nowhere")), "nowhere");
  expect_bad_input(run_eval(dir, reference + " --model vit_small" + dataset), "model mismatch");
  ijepa::data::testing::write_idx_pair(dir / "idx", "train", 4, 28, 28, false);
  ijepa::data::testing::write_idx_pair(dir / "idx", "t10k", 2, 28, 28, false);
  expect_bad_input(run_eval(dir, reference + " --dataset idx --data-path " + (dir / "idx")), "model mismatch");
  expect_bad_input(run_eval(dir, "--dataset cifar100 --data-path " + cifar), "--raw-pixels");
  expect_bad_input(run_eval(dir, reference + " --protocol svm" + dataset), "svm");
  expect_bad_input(run_eval(dir, "--raw-pixels --dataset mnist --data-path " + cifar), "mnist");
  expect_bad_input(run_eval(dir, "--raw-pixels --epochs 0" + dataset), "--epochs");
  expect_bad_input(run_eval(dir, "--raw-pixels --temperature 0" + dataset), "--temperature: must be positive");
  expect_bad_input(run_eval(dir, "--raw-pixels --weight-decay -1" + dataset), "--weight-decay: must not be negative");
  expect_bad_input(run_eval(dir, "--raw-pixels --max-test -3" + dataset), "--max-test: must not be negative");
  expect_bad_input(run_eval(dir, "--random-init --patch-size -4" + dataset), "--patch-size: must not be negative");
  expect_bad_input(run_eval(dir, "--checkpoint " + kReferenceCheckpoint + " --num-heads -3" + dataset),
                   "--num-heads: must not be negative");
  expect_bad_input(run_eval(dir, "--raw-pixels --no-such-flag"), "--no-such-flag");
  expect_bad_input(run_eval(dir, "--checkpoint " + dir.path().string() + dataset), "is a folder, not a file");
  // Checked before the checkpoint is read, naming the folder rather than a temporary file in it.
  expect_bad_input(run_eval(dir, reference + " --export-safetensors " + (dir / "missing/enc.safetensors")),
                   "--export-safetensors: folder " + (dir / "missing") + ": does not exist");
}

}  // namespace
