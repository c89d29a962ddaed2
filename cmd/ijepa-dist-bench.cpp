// ijepa-dist-bench: communication benchmarks of lib/dist, run under mpirun.
//
//   mpirun -np 2 ijepa-dist-bench allreduce [--min-bytes 1024] [--max-bytes 268435456] [--samples 9] [--json]
//     All-reduce bus bandwidth (nccl-tests: busBW = algBW * 2(n-1)/n, algBW = bytes/time) of the bucketed
//     path (GradientSynchronizer::finish() over gradients of that many bytes from sync.backward(), in
//     parameters of 1 MiB and the default bucket sizes) against one raw blocking MPI_Allreduce of the same
//     bytes, fp32.
//   mpirun -np 2 ijepa-dist-bench overlap [--layers 8] [--width 1024] [--batch 64] [--steps 8] [--rounds 5]
//                                         [--threads 1] [--bucket-mb 25] [--first-bucket-mb 1] [--json]
//     How much of the gradient all-reduce hides behind backward: a stack of Linear layers trained with the
//     buckets started from hooks (overlap) and, interleaved, all started in finish() (none).
//
// The compared variants alternate, call by call (allreduce) or round by round (overlap), since timings on
// shared machines drift; each time is the slowest rank's, and the figures are medians. Rank 0 prints a
// Markdown table, or JSON. The ranks meet through the communicator (bounded by its timeout) before every raw
// MPI_Allreduce, and a rank that fails ends the job, so that none waits for ever.
#include <mpi.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/errors.h"
#include "dist/gradient_synchronizer.h"
#include "dist/mpi_communicator.h"
#include "dist/mpi_runtime.h"

namespace {

using ijepa::common::Clock;
using ijepa::common::seconds_since;
using ijepa::dist::GradientSynchronizer;
using ijepa::dist::MpiCommunicator;

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// Element i is the largest values[i] over the ranks (every rank passes as many).
std::vector<double> max_over_ranks(MpiCommunicator& comm, const std::vector<double>& values) {
  const std::string mine(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(double));
  std::vector<double> result(values);
  for (const std::string& theirs : comm.all_gather_bytes(mine)) {
    if (theirs.size() != mine.size()) throw std::runtime_error("ranks timed different numbers of values");
    for (size_t i = 0; i < result.size(); ++i) {
      double value = 0;
      std::memcpy(&value, theirs.data() + i * sizeof(double), sizeof(double));
      result[i] = std::max(result[i], value);
    }
  }
  return result;
}

// Seconds of one call of `op`, the slowest rank's; `prepare` runs untimed before it, and the ranks start
// the call together.
double time_once(MpiCommunicator& comm, const std::function<void()>& op, const std::function<void()>& prepare) {
  prepare();
  comm.barrier();
  const auto start = Clock::now();
  op();
  return max_over_ranks(comm, {seconds_since(start)})[0];
}

// Parameters of `bytes` fp32 in total, 1 MiB each at most, named p0, p1, ...
torch::OrderedDict<std::string, torch::Tensor> parameters_of(int64_t bytes) {
  constexpr int64_t kPiece = (1 << 20) / 4;
  torch::OrderedDict<std::string, torch::Tensor> parameters;
  for (int64_t left = bytes / 4, i = 0; left > 0; left -= kPiece, ++i) {
    parameters.insert("p" + std::to_string(i), torch::zeros({std::min(left, kPiece)}).requires_grad_());
  }
  return parameters;
}

struct Options {
  int64_t min_bytes = 1024;
  int64_t max_bytes = int64_t{256} << 20;
  int rounds = 5;   // overlap: alternating rounds per variant
  int samples = 9;  // allreduce: fewest alternating samples per size
  int64_t layers = 8, width = 1024, batch = 64, steps = 8;
  int threads = 1;
  ijepa::dist::MpiTuning mpi;      // how the MPI communicator cuts collectives (max count, ring)
  ijepa::common::DistConfig dist;  // bucket sizes
  bool json = false;
};

nlohmann::json bench_allreduce(MpiCommunicator& comm, const Options& options) {
  const ijepa::common::DistConfig& config = options.dist;
  const double bus_factor = 2.0 * (comm.world_size() - 1) / comm.world_size();
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t bytes = options.min_bytes; bytes <= options.max_bytes; bytes *= 4) {
    auto parameters = parameters_of(bytes);
    GradientSynchronizer sync(comm, parameters, config, /*overlap=*/false);
    const torch::Tensor raw = torch::ones({bytes / 4});
    const int samples =
        std::max<int>(options.samples, static_cast<int>(std::min<int64_t>((int64_t{64} << 20) / bytes, 500)));
    const std::function<void()> raw_op = [&] {
      IJEPA_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, raw.data_ptr(), static_cast<int>(raw.numel()), MPI_FLOAT, MPI_SUM,
                                    MPI_COMM_WORLD));
    };
    const std::function<void()> nothing = [] {};
    // Gradients as training makes them: backward through the synchronizer, which starts no bucket here.
    const std::function<void()> backward = [&] {
      sync.zero_grad();
      torch::Tensor loss = torch::zeros({});
      for (const auto& item : parameters) loss = loss + item.value().sum();
      sync.backward(loss);
    };
    const std::function<void()> bucketed_op = [&] { sync.finish(); };
    time_once(comm, raw_op, nothing);  // warm-up: connections, buffers
    time_once(comm, bucketed_op, backward);
    std::vector<double> raw_s, bucketed_s;
    for (int i = 0; i < samples; ++i) {
      raw_s.push_back(time_once(comm, raw_op, nothing));
      bucketed_s.push_back(time_once(comm, bucketed_op, backward));
    }
    const double raw_t = median(raw_s), bucketed_t = median(bucketed_s);
    rows.push_back({{"bytes", bytes},
                    {"buckets", sync.buckets().size()},
                    {"raw_seconds", raw_t},
                    {"raw_bus_gbps", bytes / raw_t * bus_factor / 1e9},
                    {"bucketed_seconds", bucketed_t},
                    {"samples", samples},
                    {"bucketed_bus_gbps", bytes / bucketed_t * bus_factor / 1e9},
                    {"ratio", raw_t / bucketed_t}});
  }
  return rows;
}

std::string size_text(int64_t bytes) {
  if (bytes >= (1 << 20)) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes >> 10) + " KiB";
}

void print_allreduce(const nlohmann::json& rows, int world) {
  std::printf("All-reduce, fp32, %d ranks: raw MPI_Allreduce vs bucketed GradientSynchronizer::finish()\n\n", world);
  std::printf("| size | buckets | raw time | raw busBW | bucketed time | bucketed busBW | bucketed/raw |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& row : rows) {
    std::printf("| %s | %d | %.1f us | %.2f GB/s | %.1f us | %.2f GB/s | %.2f |\n",
                size_text(row["bytes"].get<int64_t>()).c_str(), row["buckets"].get<int>(),
                row["raw_seconds"].get<double>() * 1e6, row["raw_bus_gbps"].get<double>(),
                row["bucketed_seconds"].get<double>() * 1e6, row["bucketed_bus_gbps"].get<double>(),
                row["ratio"].get<double>());
  }
}

// One training step's times: whole step, backward, finish().
struct StepTimes {
  double step = 0, backward = 0, finish = 0;
};

StepTimes train_step(torch::nn::Sequential& net, GradientSynchronizer& sync, const torch::Tensor& x) {
  const auto start = Clock::now();
  sync.zero_grad();
  const torch::Tensor loss = net->forward(x).pow(2).mean();
  const auto backward_start = Clock::now();
  sync.backward(loss);
  const double backward = seconds_since(backward_start);
  const auto finish_start = Clock::now();
  sync.finish();
  return {seconds_since(start), backward, seconds_since(finish_start)};
}

nlohmann::json bench_overlap(MpiCommunicator& comm, const Options& options) {
  torch::manual_seed(0);
  torch::nn::Sequential net;
  for (int64_t i = 0; i < options.layers; ++i) {
    net->push_back(torch::nn::Linear(options.width, options.width));
    net->push_back(torch::nn::ReLU());
  }
  torch::manual_seed(1 + comm.rank());
  const torch::Tensor x = torch::randn({options.batch, options.width});
  const ijepa::common::DistConfig& config = options.dist;
  std::map<bool, std::vector<StepTimes>> times;
  size_t buckets = 0;
  for (int round = 0; round < options.rounds; ++round) {
    for (bool overlap : {round % 2 == 0, round % 2 != 0}) {
      GradientSynchronizer sync(comm, net->named_parameters(), config, overlap);
      buckets = sync.buckets().size();
      train_step(net, sync, x);  // warm-up
      for (int64_t s = 0; s < options.steps; ++s) {
        const StepTimes t = train_step(net, sync, x);
        const std::vector<double> slowest = max_over_ranks(comm, {t.step, t.backward, t.finish});
        times[overlap].push_back({slowest[0], slowest[1], slowest[2]});
      }
    }
  }
  nlohmann::json result = {{"gradient_bytes", 0},
                           {"threads", options.threads},
                           {"bucket_mb", config.bucket_mb},
                           {"first_bucket_mb", config.first_bucket_mb},
                           {"min_buckets", config.min_buckets},
                           {"buckets", buckets}};
  for (const auto& p : net->parameters())
    result["gradient_bytes"] = result["gradient_bytes"].get<int64_t>() + p.nbytes();
  for (bool overlap : {true, false}) {
    std::vector<double> step, backward, finish;
    for (const auto& t : times[overlap]) {
      step.push_back(t.step);
      backward.push_back(t.backward);
      finish.push_back(t.finish);
    }
    result[overlap ? "overlap" : "none"] = {
        {"step_ms", 1e3 * median(step)}, {"backward_ms", 1e3 * median(backward)}, {"finish_ms", 1e3 * median(finish)}};
  }
  const double exposed = result["overlap"]["finish_ms"], communication = result["none"]["finish_ms"];
  result["exposed_share"] = exposed / communication;
  return result;
}

void print_overlap(const nlohmann::json& result, const Options& options, int world) {
  std::printf(
      "Overlap, %d ranks x %d threads: %lld x Linear(%lld, %lld), batch %lld per rank, %.1f MiB of gradients, "
      "%d buckets (first %g MiB, then at most %g MiB, at least %lld wanted)\n\n",
      world, options.threads, static_cast<long long>(options.layers), static_cast<long long>(options.width),
      static_cast<long long>(options.width), static_cast<long long>(options.batch),
      result["gradient_bytes"].get<double>() / (1 << 20), result["buckets"].get<int>(), options.dist.first_bucket_mb,
      options.dist.bucket_mb, static_cast<long long>(options.dist.min_buckets));
  std::printf("| buckets start | step | backward | finish() (exposed) |\n|---|---:|---:|---:|\n");
  for (const char* mode : {"overlap", "none"}) {
    std::printf("| %s | %.1f ms | %.1f ms | %.1f ms |\n", std::string(mode) == "overlap" ? "from hooks" : "in finish()",
                result[mode]["step_ms"].get<double>(), result[mode]["backward_ms"].get<double>(),
                result[mode]["finish_ms"].get<double>());
  }
  std::printf("\nexposed share of the communication: %.0f%%\n", 100 * result["exposed_share"].get<double>());
}

int run(const std::string& command, const Options& options) {
  torch::set_num_threads(options.threads);
  MpiCommunicator comm(300.0, options.mpi);
  nlohmann::json result;
  try {
    result = command == "allreduce" ? bench_allreduce(comm, options) : bench_overlap(comm, options);
  } catch (const std::exception& e) {
    // The other ranks would wait for this one in their next collective: end the job (MPI_Abort does not return).
    const bool input = dynamic_cast<const ijepa::common::InputError*>(&e) != nullptr;
    if (comm.world_size() > 1) comm.abort(std::string("ijepa-dist-bench: ") + e.what(), input ? 2 : 1);
    throw;
  }
  if (comm.rank() != 0) return 0;
  if (options.json) {
    std::cout << nlohmann::json{{command, result}, {"world_size", comm.world_size()}}.dump(2) << std::endl;
  } else if (command == "allreduce") {
    print_allreduce(result, comm.world_size());
  } else {
    print_overlap(result, options, comm.world_size());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lib/dist communication benchmarks (run under mpirun)"};
  app.require_subcommand(1);
  Options options;
  auto* allreduce = app.add_subcommand("allreduce", "bucketed all-reduce vs raw MPI_Allreduce bandwidth");
  allreduce->add_option("--min-bytes", options.min_bytes, "smallest size (bytes, multiple of 4)");
  allreduce->add_option("--max-bytes", options.max_bytes, "largest size (bytes); sizes grow by 4x");
  auto* overlap = app.add_subcommand("overlap", "communication hidden behind backward");
  overlap->add_option("--layers", options.layers, "Linear layers");
  overlap->add_option("--width", options.width, "features per layer");
  overlap->add_option("--batch", options.batch, "rows per rank");
  overlap->add_option("--steps", options.steps, "timed steps per round");
  overlap->add_option("--threads", options.threads, "intra-op threads per rank");
  allreduce->add_option("--samples", options.samples, "fewest samples per size (small sizes take more)");
  allreduce->add_option("--max-count", options.mpi.max_count, "elements per MPI call of the bucketed path");
  overlap->add_option("--rounds", options.rounds, "alternating rounds per variant");
  for (auto* command : {allreduce, overlap}) {
    command->add_option("--bucket-mb", options.dist.bucket_mb, "bucket size (MiB), as dist.bucket_mb")
        ->capture_default_str();
    command
        ->add_option("--first-bucket-mb", options.dist.first_bucket_mb, "first bucket (MiB), as dist.first_bucket_mb")
        ->capture_default_str();
    command->add_option("--min-buckets", options.dist.min_buckets, "buckets wanted at least, as dist.min_buckets")
        ->capture_default_str();
    command->add_flag("--json", options.json, "print JSON on stdout");
    command->add_option("--ring-min-bytes", options.mpi.ring_min_bytes, "all-reduces this large use the ring")
        ->capture_default_str();
    command->add_option("--ring-segment-bytes", options.mpi.ring_segment_bytes, "the ring's segment")
        ->capture_default_str();
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run(allreduce->parsed() ? "allreduce" : "overlap", options);
  } catch (const ijepa::common::InputError& e) {
    std::cerr << "ijepa-dist-bench: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ijepa-dist-bench: " << e.what() << std::endl;
    return 1;
  }
}
