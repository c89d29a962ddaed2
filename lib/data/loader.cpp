// The threaded loader: claim-by-slot workers, an in-order assembler, a bounded window of batches.
#include "data/loader.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "data/rng.h"

namespace ijepa::data {

namespace {

const Dataset& require(const std::shared_ptr<const Dataset>& dataset) {
  if (!dataset) throw std::invalid_argument("Loader: no dataset");
  return *dataset;
}

// The same error with `context` in front; InputError stays InputError so the mains still exit with 2.
std::exception_ptr with_context(const std::string& context) {
  try {
    throw;
  } catch (const common::InputError& e) {
    return std::make_exception_ptr(common::InputError(context + ": " + e.what()));
  } catch (const std::exception& e) {
    return std::make_exception_ptr(std::runtime_error(context + ": " + e.what()));
  } catch (...) {
    return std::make_exception_ptr(std::runtime_error(context + ": unknown error"));
  }
}

}  // namespace

// Corrupt samples seen by this loader, over all its epochs.
struct Loader::SkipLog {
  std::mutex mutex;
  std::unordered_set<int64_t> bad;  // dataset indices
  int64_t replacements = 0;

  bool known_bad(int64_t index) {
    std::lock_guard<std::mutex> lock(mutex);
    return bad.count(index) != 0;
  }
  void report(int64_t index, const char* what) {
    std::lock_guard<std::mutex> lock(mutex);
    if (bad.insert(index).second) log::warn(log::str("data: skipping unreadable sample ", what));
  }
  void count_replacement() {
    std::lock_guard<std::mutex> lock(mutex);
    ++replacements;
  }
};

// The threads and hand-over state of one running epoch. Everything below `mutex` is guarded by it.
struct Loader::Epoch {
  struct Pending {
    Batch batch;
    int64_t remaining = 0;  // slots not yet filled
    std::exception_ptr error;
  };
  struct Ready {
    Batch batch;
    std::exception_ptr error;
  };

  int64_t number = 0;
  int64_t first_batch = 0;
  int64_t end_batch = 0;
  std::vector<int64_t> shard;

  std::mutex mutex;
  std::condition_variable work_cv;   // workers: a slot may be claimed
  std::condition_variable done_cv;   // assembler: a batch is complete
  std::condition_variable ready_cv;  // next(): a batch is queued or the epoch is over
  int64_t claim_batch = 0;           // next slot to decode
  int64_t claim_slot = 0;
  int64_t next_take = 0;  // first batch next() has not returned yet
  std::map<int64_t, Pending> pending;
  std::map<int64_t, common::Clock::time_point> reading;  // shard positions being loaded, since when
  std::deque<Ready> ready;
  bool finished = false;  // the assembler queued its last batch or an error, or a thread failed
  bool stopping = false;
  std::exception_ptr failure;  // what ended a thread outside any sample (see run_guarded)
  std::vector<std::thread> threads;
};

Loader::Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)),
      options_(std::move(options)),
      transform_(options_.transform, require(dataset_).channels()),
      sampler_(dataset_->size(), options_.world_size, options_.rank, options_.seed, options_.train),
      skips_(std::make_unique<SkipLog>()) {
  if (options_.batch_size < 1) throw common::InputError("data.batch_size: must be at least 1");
  if (options_.prefetch_batches < 1) throw common::InputError("data.prefetch_batches: must be at least 1");
  if (!(options_.slow_wait_warning_s > 0)) throw std::invalid_argument("Loader: slow_wait_warning_s must be positive");
  if (batches_per_epoch() == 0) {
    throw common::InputError("data.batch_size: " + std::to_string(options_.batch_size) + " exceeds the " +
                             std::to_string(sampler_.shard_size()) + " samples of rank " +
                             std::to_string(options_.rank) + "'s shard, so an epoch has no full batch");
  }
}

Loader::~Loader() { stop(); }

int64_t Loader::batches_per_epoch() const {
  const int64_t shard = sampler_.shard_size();
  return options_.train ? shard / options_.batch_size : (shard + options_.batch_size - 1) / options_.batch_size;
}

int64_t Loader::batch_size_of(int64_t batch) const {
  return std::min(options_.batch_size, sampler_.shard_size() - batch * options_.batch_size);
}

int64_t Loader::skipped_samples() const {
  std::lock_guard<std::mutex> lock(skips_->mutex);
  return skips_->replacements;
}

void Loader::start(int64_t epoch, int64_t first_batch) {
  stop();
  if (first_batch < 0 || first_batch > batches_per_epoch()) {
    throw std::out_of_range("Loader::start: batch " + std::to_string(first_batch) + " outside [0, " +
                            std::to_string(batches_per_epoch()) + "]");
  }
  auto e = std::make_unique<Epoch>();
  e->number = epoch;
  e->first_batch = e->claim_batch = e->next_take = first_batch;
  e->end_batch = batches_per_epoch();
  e->shard = sampler_.shard(epoch);
  e->finished = first_batch == e->end_batch;
  epoch_ = std::move(e);
  if (epoch_->finished) return;
  Epoch& running = *epoch_;
  try {
    running.threads.emplace_back([this, &running] { run_guarded(running, &Loader::run_assembler); });
    for (int64_t w = 0; w < std::max<int64_t>(1, options_.num_workers); ++w) {
      running.threads.emplace_back([this, &running] { run_guarded(running, &Loader::run_worker); });
    }
  } catch (...) {
    stop();
    throw;
  }
}

void Loader::stop() {
  if (!epoch_) return;
  {
    std::lock_guard<std::mutex> lock(epoch_->mutex);
    epoch_->stopping = true;
  }
  epoch_->work_cv.notify_all();
  epoch_->done_cv.notify_all();
  epoch_->ready_cv.notify_all();
  for (std::thread& t : epoch_->threads) t.join();
  epoch_.reset();
}

std::optional<Batch> Loader::next() {
  if (!epoch_) throw std::logic_error("Loader::next called before start");
  Epoch& e = *epoch_;
  const auto begin = common::Clock::now();
  std::unique_lock<std::mutex> lock(e.mutex);
  const auto ready = [&] { return !e.ready.empty() || e.finished; };
  while (!e.ready_cv.wait_for(lock, common::to_duration(options_.slow_wait_warning_s), ready)) {
    log::warn(describe_slow_wait(e, common::seconds_since(begin)));
  }
  wait_last_s_ = common::seconds_since(begin);
  wait_total_s_ += wait_last_s_;
  if (e.ready.empty()) {
    if (e.failure) std::rethrow_exception(e.failure);  // after the batches completed before it
    return std::nullopt;
  }
  // An error stays queued, so every later call reports it too.
  if (e.ready.front().error) std::rethrow_exception(e.ready.front().error);
  Batch batch = std::move(e.ready.front().batch);
  e.ready.pop_front();
  e.next_take = batch.index + 1;
  lock.unlock();
  e.work_cv.notify_all();
  return batch;
}

std::string Loader::describe_slow_wait(const Epoch& e, double waited_s) const {
  std::ostringstream text;
  text.precision(3);
  text << "data: rank " << options_.rank << " has waited " << waited_s << " s for batch " << e.next_take << " of epoch "
       << e.number << "; ";
  if (e.reading.empty()) {
    text << "no sample is being read (the batch is with the assembling thread and its on_batch hook)";
    return text.str();
  }
  // The longest-running reads first: a hung one stands out.
  std::vector<std::pair<common::Clock::time_point, int64_t>> oldest;
  for (const auto& [position, since] : e.reading) oldest.emplace_back(since, position);
  std::sort(oldest.begin(), oldest.end());
  constexpr size_t kNamed = 3;
  text << "reading";
  for (size_t i = 0; i < std::min(kNamed, oldest.size()); ++i) {
    text << (i == 0 ? " " : ", ") << dataset_->name(e.shard[static_cast<size_t>(oldest[i].second)]) << " for "
         << common::seconds_since(oldest[i].first) << " s";
  }
  if (oldest.size() > kNamed) text << " and " << oldest.size() - kNamed << " more";
  return text.str();
}

int64_t Loader::load_sample(const Epoch& epoch, int64_t position, float* out) const {
  const int64_t shard_size = static_cast<int64_t>(epoch.shard.size());
  for (int64_t attempt = 0; attempt < shard_size; ++attempt) {
    const int64_t index = epoch.shard[(position + attempt) % shard_size];
    if (skips_->known_bad(index)) continue;
    try {
      const Image image = dataset_->load(index);
      if (options_.train) {
        const uint64_t global = static_cast<uint64_t>(sampler_.global_position(position));
        Rng rng(mix_seed({options_.seed, static_cast<uint64_t>(epoch.number), global}));
        transform_.train(image, rng, out);
      } else {
        transform_.eval(image, out);
      }
    } catch (const CorruptSample& e) {
      skips_->report(index, e.what());
      continue;
    } catch (...) {
      std::rethrow_exception(with_context(dataset_->name(index)));  // the sample read, maybe a replacement
    }
    if (attempt > 0) skips_->count_replacement();
    return index;
  }
  throw common::InputError("data: rank " + std::to_string(options_.rank) + " found no readable sample in its " +
                           std::to_string(shard_size) + "-sample shard");
}

void Loader::run_guarded(Epoch& e, void (Loader::*body)(Epoch&) const) const {
  try {
    (this->*body)(e);
  } catch (...) {
    std::exception_ptr failure = std::current_exception();
    try {
      failure = with_context("data: loader thread");
    } catch (...) {  // no memory left for the message: the error as it is
    }
    {
      std::lock_guard<std::mutex> lock(e.mutex);
      if (!e.failure) e.failure = failure;
      e.finished = true;
      e.claim_batch = e.end_batch;  // workers stop claiming
    }
    e.work_cv.notify_all();
    e.done_cv.notify_all();
    e.ready_cv.notify_all();
  }
}

void Loader::run_worker(Epoch& e) const {
  const int64_t sample_floats = transform_.sample_floats();
  std::unique_lock<std::mutex> lock(e.mutex);
  for (;;) {
    e.work_cv.wait(lock, [&] {
      return e.stopping || e.claim_batch >= e.end_batch || e.claim_batch < e.next_take + options_.prefetch_batches;
    });
    if (e.stopping || e.claim_batch >= e.end_batch) return;
    const int64_t b = e.claim_batch;
    const int64_t slot = e.claim_slot;
    Epoch::Pending& p = e.pending[b];
    if (slot == 0) {
      p.batch.epoch = e.number;
      p.batch.index = b;
      p.batch.size = p.remaining = batch_size_of(b);
      p.batch.channels = transform_.channels();
      p.batch.height = p.batch.width = transform_.crop_size();
      p.batch.images.resize(static_cast<size_t>(p.batch.size * sample_floats));
      p.batch.labels.resize(p.batch.size);
      p.batch.samples.resize(p.batch.size);
    }
    if (++e.claim_slot == p.batch.size) {
      ++e.claim_batch;
      e.claim_slot = 0;
    }
    float* out = p.batch.images.data() + slot * sample_floats;
    const int64_t position = b * options_.batch_size + slot;
    e.reading[position] = common::Clock::now();
    lock.unlock();
    std::exception_ptr error;
    int64_t index = -1;
    int64_t label = -1;
    try {
      index = load_sample(e, position, out);
      label = dataset_->label(index);
    } catch (...) {
      error = std::current_exception();  // load_sample named the sample
    }
    lock.lock();
    e.reading.erase(position);
    if (error && !p.error) p.error = error;
    if (!error) {
      p.batch.samples[slot] = index;
      p.batch.labels[slot] = label;
    }
    if (--p.remaining == 0) e.done_cv.notify_all();
  }
}

void Loader::run_assembler(Epoch& e) const {
  for (int64_t b = e.first_batch; b < e.end_batch; ++b) {
    Epoch::Pending p;
    {
      std::unique_lock<std::mutex> lock(e.mutex);
      e.done_cv.wait(lock, [&] {
        const auto it = e.pending.find(b);
        return e.stopping || e.failure || (it != e.pending.end() && it->second.remaining == 0);
      });
      if (e.stopping || e.failure) return;
      p = std::move(e.pending[b]);
      e.pending.erase(b);
    }
    std::exception_ptr error = p.error;
    if (!error && options_.on_batch) {
      try {
        options_.on_batch(p.batch);
      } catch (...) {
        error = with_context("on_batch for batch " + std::to_string(b) + " of epoch " + std::to_string(e.number));
      }
    }
    {
      std::lock_guard<std::mutex> lock(e.mutex);
      e.ready.push_back({std::move(p.batch), error});
      if (error) {
        e.finished = true;
        e.claim_batch = e.end_batch;  // workers stop claiming
      }
    }
    e.ready_cv.notify_all();
    if (error) {
      e.work_cv.notify_all();
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(e.mutex);
    e.finished = true;
  }
  e.ready_cv.notify_all();
}

}  // namespace ijepa::data
