// The loader: determinism across thread counts and resumes, in-order hook, corrupt-sample replacement, errors
// from workers and the hook, shutdown mid-epoch, eval mode; and an image folder end to end.
#include "data/loader.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "common/errors.h"
#include "data_test_util.h"

namespace ijepa::data {
namespace {

// n grey-or-RGB images of side x side whose pixels encode the index; some indices corrupt or failing.
class FakeDataset : public Dataset {
 public:
  FakeDataset(int64_t n, int side, int channels = 1) : n_(n), side_(side), channels_(channels) {}
  std::set<int64_t> corrupt;
  int64_t failing = -1;  // load() throws a plain error (not CorruptSample)
  int64_t held = -1;     // load() of this index waits while hold is set (a read that hangs)
  mutable std::atomic<bool> hold{false};
  mutable std::atomic<bool> holding{false};  // a load() of `held` has begun

  int64_t size() const override { return n_; }
  int channels() const override { return channels_; }
  int64_t num_classes() const override { return 10; }
  int64_t label(int64_t i) const override { return i % 10; }
  std::string name(int64_t i) const override { return "fake#" + std::to_string(i); }
  Image load(int64_t i) const override {
    if (corrupt.count(i)) throw CorruptSample(name(i) + ": corrupt");
    if (i == failing) throw std::runtime_error("disk on fire");
    if (i == held) holding = true;
    while (i == held && hold) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    Image image{side_, side_, channels_, {}};
    for (int p = 0; p < side_ * side_ * channels_; ++p)
      image.pixels.push_back(static_cast<uint8_t>((i * 31 + p * 7) % 256));
    return image;
  }

 private:
  int64_t n_;
  int side_;
  int channels_;
};

// Sends the default logger's lines to text() while in scope, restoring the previous logger after (also when an
// assertion returns early).
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    spdlog::set_default_logger(
        std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(lines_)));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
  std::string text() const { return lines_.str(); }

 private:
  std::ostringstream lines_;
  std::shared_ptr<spdlog::logger> previous_;
};

LoaderOptions small_options(int64_t workers) {
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 5;
  o.num_workers = workers;
  o.prefetch_batches = 2;
  o.transform.crop_size = 8;
  return o;
}

std::vector<Batch> drain(Loader& loader) {
  std::vector<Batch> batches;
  while (auto batch = loader.next()) batches.push_back(std::move(*batch));
  return batches;
}

void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].index, b[i].index);
    EXPECT_EQ(a[i].epoch, b[i].epoch);
    EXPECT_EQ(a[i].samples, b[i].samples);
    EXPECT_EQ(a[i].labels, b[i].labels);
    EXPECT_EQ(a[i].images, b[i].images) << "batch " << a[i].index;  // bit-identical
  }
}

TEST(LoaderTest, BatchesPerEpochAndShapes) {
  auto data = std::make_shared<FakeDataset>(22, 12);
  Loader train(data, small_options(2));
  EXPECT_EQ(train.batches_per_epoch(), 5);  // 22 / 4, last 2 dropped
  train.start(0);
  const auto batches = drain(train);
  ASSERT_EQ(batches.size(), 5u);
  for (const Batch& b : batches) {
    EXPECT_EQ(b.size, 4);
    EXPECT_EQ(b.channels, 1);
    EXPECT_EQ(b.height, 8);
    EXPECT_EQ(b.width, 8);
    EXPECT_EQ(b.images.size(), 4u * 64);
    for (size_t j = 0; j < 4; ++j) EXPECT_EQ(b.labels[j], b.samples[j] % 10);
  }
  EXPECT_FALSE(train.next().has_value());  // stays at the end
  LoaderOptions eval_options = small_options(2);
  eval_options.train = false;
  EXPECT_EQ(Loader(data, eval_options).batches_per_epoch(), 6);  // last batch of 2 kept
}

TEST(LoaderTest, OneAndThreeWorkersGiveIdenticalBatches) {
  auto data = std::make_shared<FakeDataset>(40, 13, 3);
  data->corrupt = {3, 17};
  for (int64_t epoch : {0, 1}) {
    Loader one(data, small_options(1));
    Loader three(data, small_options(3));
    one.start(epoch);
    three.start(epoch);
    expect_same(drain(one), drain(three));
    EXPECT_EQ(one.skipped_samples(), three.skipped_samples());
  }
}

TEST(LoaderTest, StartAtBatchKEqualsSkippingK) {
  auto data = std::make_shared<FakeDataset>(30, 10);
  Loader full(data, small_options(2));
  full.start(3);
  std::vector<Batch> all = drain(full);
  Loader resumed(data, small_options(2));
  resumed.start(3, 4);
  const std::vector<Batch> rest = drain(resumed);
  all.erase(all.begin(), all.begin() + 4);
  expect_same(all, rest);
  resumed.start(3, resumed.batches_per_epoch());
  EXPECT_FALSE(resumed.next().has_value());
  EXPECT_THROW(resumed.start(3, resumed.batches_per_epoch() + 1), std::out_of_range);
}

TEST(LoaderTest, EpochsDifferAndRanksAreDisjoint) {
  auto data = std::make_shared<FakeDataset>(16, 8);
  std::multiset<int64_t> seen;
  std::vector<int64_t> rank0_epoch0;
  for (int64_t rank : {0, 1}) {
    LoaderOptions o = small_options(2);
    o.world_size = 2;
    o.rank = rank;
    Loader loader(data, o);
    loader.start(0);
    for (const Batch& b : drain(loader)) seen.insert(b.samples.begin(), b.samples.end());
    if (rank == 0) {
      loader.start(0);
      rank0_epoch0 = loader.next()->samples;
      loader.start(1);
      EXPECT_NE(loader.next()->samples, rank0_epoch0);
    }
  }
  EXPECT_EQ(seen.size(), 16u);
  for (int64_t i = 0; i < 16; ++i) EXPECT_EQ(seen.count(i), 1u);
}

TEST(LoaderTest, HookRunsInBatchOrderOffTheCallerThread) {
  auto data = std::make_shared<FakeDataset>(64, 8);
  LoaderOptions o = small_options(3);
  int64_t counter = 0;  // only the assembling thread touches it
  const auto caller = std::this_thread::get_id();
  bool off_thread = true;
  o.on_batch = [&](Batch& b) {
    b.attachment = counter++;
    off_thread = off_thread && std::this_thread::get_id() != caller;
  };
  Loader loader(data, o);
  loader.start(0, 2);
  for (int64_t i = 2; i < loader.batches_per_epoch(); ++i) {
    const auto b = loader.next();
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->index, i);
    EXPECT_EQ(std::any_cast<int64_t>(b->attachment), i - 2);
  }
  EXPECT_TRUE(off_thread);
  EXPECT_GE(loader.data_wait_seconds(), loader.last_wait_seconds());
  EXPECT_GE(loader.last_wait_seconds(), 0.0);
}

TEST(LoaderTest, CorruptSamplesAreReplacedWarnedOnceAndCounted) {
  CapturedLog log;
  auto data = std::make_shared<FakeDataset>(12, 8);
  data->corrupt = {5};
  LoaderOptions o = small_options(2);
  o.train = false;  // dataset order: slot 5 is replaced by sample 6, the next in the shard
  Loader loader(data, o);
  for (int epoch = 0; epoch < 2; ++epoch) {
    loader.start(epoch);
    const auto batches = drain(loader);
    ASSERT_EQ(batches.size(), 3u);
    EXPECT_EQ(batches[1].samples, (std::vector<int64_t>{4, 6, 6, 7}));
  }
  EXPECT_EQ(loader.skipped_samples(), 2);  // once per epoch
  const std::string text = log.text();
  EXPECT_NE(text.find("fake#5"), std::string::npos) << text;
  EXPECT_EQ(text.find("fake#5"), text.rfind("fake#5")) << "warned more than once: " << text;
}

TEST(LoaderTest, AHungReadIsWarnedAboutByNameWhileNextWaitsAndTheBatchStillComes) {
  CapturedLog log;
  auto data = std::make_shared<FakeDataset>(12, 8);
  data->held = 2;
  data->hold = true;
  LoaderOptions o = small_options(2);
  o.train = false;  // dataset order: sample 2 is in batch 0
  o.slow_wait_warning_s = 0.05;
  Loader loader(data, o);
  loader.start(0);
  std::thread storage_answers([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    data->hold = false;
  });
  const auto batch = loader.next();
  storage_answers.join();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->samples, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_GE(loader.last_wait_seconds(), 0.3);
  const std::string text = log.text();
  EXPECT_NE(text.find("data: rank 0 has waited"), std::string::npos) << text;
  EXPECT_NE(text.find("for batch 0 of epoch 0; reading fake#2 for"), std::string::npos) << text;
  EXPECT_GE(std::count(text.begin(), text.end(), '\n'), 2) << "a warning every 0.05 s of a 0.4 s wait: " << text;
}

TEST(LoaderTest, AllCorruptIsAnInputError) {
  auto data = std::make_shared<FakeDataset>(4, 8);
  data->corrupt = {0, 1, 2, 3};
  Loader loader(data, small_options(2));
  loader.start(0);
  EXPECT_THROW(loader.next(), common::InputError);
}

TEST(LoaderTest, WorkerAndHookErrorsAreRethrownWithTheSampleName) {
  auto data = std::make_shared<FakeDataset>(40, 8);
  data->failing = 9;
  LoaderOptions o = small_options(3);
  o.train = false;
  Loader loader(data, o);
  loader.start(0);
  EXPECT_TRUE(loader.next().has_value());  // batches 0 and 1 precede the failure
  EXPECT_TRUE(loader.next().has_value());
  for (int repeat = 0; repeat < 2; ++repeat) {
    try {
      loader.next();
      FAIL() << "no error";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("fake#9"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("disk on fire"), std::string::npos) << e.what();
    }
  }
  LoaderOptions h = small_options(2);
  h.on_batch = [](Batch& b) {
    if (b.index == 1) throw common::InputError("mask sampler: bad");
  };
  Loader hooked(std::make_shared<FakeDataset>(40, 8), h);
  hooked.start(0);
  EXPECT_TRUE(hooked.next().has_value());
  EXPECT_THROW(hooked.next(), common::InputError);
}

TEST(LoaderTest, AnErrorInAReplacementSampleNamesTheReplacement) {
  auto data = std::make_shared<FakeDataset>(16, 8);
  data->corrupt = {7};
  data->failing = 8;  // what replaces sample 7, the last of batch 1
  LoaderOptions o = small_options(2);
  o.train = false;
  Loader loader(data, o);
  loader.start(0);
  ASSERT_TRUE(loader.next().has_value());
  try {
    loader.next();
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("fake#8: disk on fire", 0), 0u) << e.what();
  }
}

TEST(LoaderTest, AnErrorOfTheThreadsThemselvesComesOutOfNext) {
  // A batch of four 2^20 x 2^20 samples (16 TiB) cannot be allocated; the worker's bad_alloc must not terminate.
  auto data = std::make_shared<FakeDataset>(8, 8);
  LoaderOptions o = small_options(2);
  o.transform.crop_size = 1 << 20;
  Loader loader(data, o);
  const testing::AddressSpaceCap cap(size_t{1} << 30);
  loader.start(0);
  for (int repeat = 0; repeat < 2; ++repeat) {
    try {
      loader.next();
      FAIL() << "no error";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("bad_alloc"), std::string::npos) << e.what();
    }
  }
  loader.stop();
}

TEST(LoaderTest, StopsCleanlyMidEpoch) {
  auto data = std::make_shared<FakeDataset>(400, 16);
  for (int64_t taken : {0, 1, 3}) {
    Loader loader(data, small_options(3));
    loader.start(0);
    for (int64_t i = 0; i < taken; ++i) ASSERT_TRUE(loader.next().has_value());
    loader.start(1, 2);  // restarting stops the running epoch first
    ASSERT_TRUE(loader.next().has_value());
  }  // the destructor joins workers blocked on a full window
  // A worker inside load() when the epoch stops: stopping waits for that read to return, then goes on.
  data->held = 1;
  data->hold = true;
  LoaderOptions eval = small_options(3);
  eval.train = false;  // dataset order: sample 1 is read at once
  Loader loader(data, eval);
  loader.start(0);
  while (!data->holding) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::thread storage_answers([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    data->hold = false;
  });
  loader.start(1, 2);
  EXPECT_FALSE(data->hold) << "the epoch stopped before the read it began returned";
  storage_answers.join();
  const auto batch = loader.next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->index, 2);
  Loader idle(data, small_options(2));
  EXPECT_THROW(idle.next(), std::logic_error);
}

TEST(LoaderTest, EvalKeepsDatasetOrderAndNormalisesNativeImages) {
  auto data = std::make_shared<FakeDataset>(6, 8);
  LoaderOptions o = small_options(2);
  o.train = false;
  Loader loader(data, o);
  loader.start(0);
  const auto batches = drain(loader);
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0].samples, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(batches[1].samples, (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(batches[1].size, 2);
  EXPECT_EQ(batches[1].images.size(), 2u * 64);
  const Image five = data->load(5);
  for (int p = 0; p < 64; ++p) {
    EXPECT_NEAR(batches[1].images[64 + p], (five.pixels[p] / 255.0f - 0.2860f) / 0.3530f, 1e-5f);
  }
}

TEST(LoaderTest, BadOptionsAreInputErrors) {
  auto data = std::make_shared<FakeDataset>(6, 8);
  LoaderOptions o = small_options(1);
  o.batch_size = 7;  // no full batch in training
  EXPECT_THROW(Loader(data, o), common::InputError);
  o.batch_size = 0;
  EXPECT_THROW(Loader(data, o), common::InputError);
  o = small_options(1);
  o.prefetch_batches = 0;
  EXPECT_THROW(Loader(data, o), common::InputError);
  o = small_options(1);
  o.rank = 1;
  EXPECT_THROW(Loader(data, o), common::InputError);
  o = small_options(1);
  o.slow_wait_warning_s = 0;
  EXPECT_THROW(Loader(data, o), std::invalid_argument);
}

TEST(LoaderTest, ImageFolderEndToEndSkipsTheCorruptJpeg) {
  ijepa::testing::TempDir dir;
  using testing::encode_jpeg;
  using testing::encode_png;
  ijepa::testing::write_file(dir / "train/a/1.jpg", encode_jpeg(testing::gradient_image(40, 60)));
  ijepa::testing::write_file(dir / "train/a/2.png",
                             encode_png(5, 7, PNG_COLOR_TYPE_RGB, 8, std::vector<uint8_t>(105, 9)));
  ijepa::testing::write_file(dir / "train/b/3.jpg", "\xFF\xD8\xFF garbage");
  ijepa::testing::write_file(dir / "train/b/4.jpg", encode_jpeg(testing::gradient_image(33, 21)));
  LoaderOptions o = small_options(2);
  o.batch_size = 2;
  o.transform.crop_size = 16;
  Loader loader(open_dataset("imagefolder", dir.path().string(), "train"), o);
  loader.start(0);
  const auto batches = drain(loader);
  ASSERT_EQ(batches.size(), 2u);
  for (const Batch& b : batches) {
    EXPECT_EQ(b.channels, 3);
    EXPECT_EQ(b.images.size(), 2u * 3 * 16 * 16);
    for (int64_t s : b.samples) EXPECT_NE(s, 2);
  }
  EXPECT_EQ(loader.skipped_samples(), 1);
}

}  // namespace
}  // namespace ijepa::data
