// How far the loader keeps ahead of a consumer: decode throughput and the consumer's wait per batch, for
// Fashion-MNIST (28x28x1, batch 64) and an image folder of ImageNet-sized JPEGs (500x375 -> 224, batch 16).
//   data_loader_throughput [--workers N] [--step-ms-a MS] [--step-ms-b MS]
// Prints one JSON object per case on stdout. Not a test: timings swing on shared machines.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "data/loader.h"
#include "data_test_util.h"

namespace {

using ijepa::data::Loader;
using ijepa::data::LoaderOptions;

struct Figures {
  double free_images_per_second = 0;  // consumer takes batches as fast as they come
  double wait_ms_per_batch = 0;       // with a consumer that spends step_ms per batch (after the first batch)
  double first_batch_ms = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

Figures measure(const std::shared_ptr<const ijepa::data::Dataset>& data, LoaderOptions options, int batches,
                double step_ms) {
  Figures f;
  {
    Loader loader(data, options);
    loader.start(0);
    loader.next();
    const auto begin = std::chrono::steady_clock::now();
    for (int i = 0; i < batches; ++i) loader.next();
    f.free_images_per_second = batches * options.batch_size / seconds_since(begin);
  }
  Loader loader(data, options);
  loader.start(1);
  loader.next();
  f.first_batch_ms = loader.last_wait_seconds() * 1e3;
  const double before = loader.data_wait_seconds();
  for (int i = 0; i < batches; ++i) {
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(step_ms));
    loader.next();
  }
  f.wait_ms_per_batch = (loader.data_wait_seconds() - before) / batches * 1e3;
  return f;
}

void print(const char* name, const LoaderOptions& o, double step_ms, const Figures& f) {
  std::printf(
      "{\"case\": \"%s\", \"workers\": %lld, \"batch\": %lld, \"crop\": %d, \"free_images_per_second\": %.0f, "
      "\"step_ms\": %.0f, \"wait_ms_per_batch\": %.3f, \"first_batch_ms\": %.1f}\n",
      name, static_cast<long long>(o.num_workers), static_cast<long long>(o.batch_size), o.transform.crop_size,
      f.free_images_per_second, step_ms, f.wait_ms_per_batch, f.first_batch_ms);
  std::fflush(stdout);
}

// 160 photo-sized JPEGs (500x375, texture plus gradients) in 2 classes: 10 batches of 16.
void write_jpeg_folder(const std::string& root) {
  for (int i = 0; i < 160; ++i) {
    ijepa::data::Image image{375, 500, 3, std::vector<uint8_t>(375 * 500 * 3)};
    for (int y = 0; y < 375; ++y) {
      for (int x = 0; x < 500; ++x) {
        uint8_t* p = &image.pixels[(y * 500 + x) * 3];
        p[0] = static_cast<uint8_t>(x / 2 + (x * y * (i + 1)) % 37);
        p[1] = static_cast<uint8_t>(y / 2 + ((x ^ y) + i) % 29);
        p[2] = static_cast<uint8_t>((x + y + 13 * i) % 256);
      }
    }
    ijepa::testing::write_file(root + "/train/c" + std::to_string(i % 2) + "/" + std::to_string(i) + ".jpg",
                               ijepa::data::testing::encode_jpeg(image, 90));
  }
}

}  // namespace

int main(int argc, char** argv) {
  int64_t workers = 2;
  double step_a = 20, step_b = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--workers")) workers = std::stoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--step-ms-a")) step_a = std::stod(argv[i + 1]);
    if (!std::strcmp(argv[i], "--step-ms-b")) step_b = std::stod(argv[i + 1]);
  }
  LoaderOptions a;
  a.batch_size = 64;
  a.num_workers = workers;
  a.transform.crop_size = 28;
  const auto fmnist = ijepa::data::open_dataset("idx", "/usr/share/datasets/fashion-mnist", "train");
  print("fashion_mnist_train", a, step_a, measure(fmnist, a, 100, step_a));

  ijepa::testing::TempDir dir;
  write_jpeg_folder(dir.path().string());
  LoaderOptions b;
  b.batch_size = 16;
  b.num_workers = workers;
  b.transform.crop_size = 224;
  const auto folder = ijepa::data::open_dataset("imagefolder", dir.path().string(), "train");
  print("jpeg_500x375_to_224", b, step_b, measure(folder, b, 8, step_b));
  return 0;
}
