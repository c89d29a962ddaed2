// ijepa-train under `mpirun -np 2` on the CPU: two ranks with batch B train as one rank with batch 2B and log
// the global mean loss; a stopped 2-rank run resumes bit-exactly, and with 1 rank where its epoch stopped (with 3
// ranks, whose steps do not meet that sample, it is refused); a killed rank makes the other fail soon with
// a message naming it; an input error on one rank ends the job at once; ranks whose configs differ are refused
// at start. Every mpirun runs under `timeout`.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "data/data_test_util.h"
#include "model/state_dict.h"
#include "test_util.h"
#include "tiny_config.h"

namespace ijepa::train {
namespace {

using Clock = std::chrono::steady_clock;
using ijepa::testing::binary_path;
using ijepa::testing::read_file;
using ijepa::testing::run_command;
using ijepa::testing::TempDir;

constexpr int kGuardSeconds = 120;  // `timeout` around every mpirun: a hang fails the test instead of stalling

std::string mpirun_prefix(const std::string& tag) {
  // IJEPA_TEST_TAG marks this test's ranks (found by it in /proc) apart from other tests' running beside it.
  return "env IJEPA_TEST_TAG=" + tag + " timeout " + std::to_string(kGuardSeconds) + " " IJEPA_MPIEXEC +
         " --allow-run-as-root --oversubscribe";
}

struct CsvStep {
  std::string epoch, itr, mask_a, mask_b, step;
  double loss = 0;
};

// The rows of a run's CSV (the columns that do not depend on timing).
std::vector<CsvStep> csv_steps(const std::string& path) {
  std::vector<CsvStep> rows;
  std::istringstream lines(read_file(path));
  std::string line;
  std::getline(lines, line);  // header: epoch,itr,loss,mask-A,mask-B,time (ms),step,...
  while (std::getline(lines, line)) {
    std::vector<std::string> cells;
    std::istringstream in(line);
    for (std::string cell; std::getline(in, cell, ',');) cells.push_back(cell);
    rows.push_back({cells.at(0), cells.at(1), cells.at(3), cells.at(4), cells.at(6), std::stod(cells.at(2))});
  }
  return rows;
}

int64_t line_count(const std::string& path) {
  const std::string text = read_file(path);
  return std::count(text.begin(), text.end(), '\n');
}

// The pid of this test's rank `rank` (by IJEPA_TEST_TAG and Open MPI's OMPI_COMM_WORLD_RANK), or -1.
pid_t rank_pid(const std::string& tag, int rank) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string environ = read_file(entry.path() / "environ");
    std::replace(environ.begin(), environ.end(), '\0', '\n');
    environ = "\n" + environ;
    if (environ.find("\nIJEPA_TEST_TAG=" + tag + "\n") != std::string::npos &&
        environ.find("\nOMPI_COMM_WORLD_RANK=" + std::to_string(rank) + "\n") != std::string::npos) {
      return static_cast<pid_t>(std::stol(name));
    }
  }
  return -1;
}

// A socket listening on a loopback port the kernel picked (set in `port`); -1 on failure.
int listening_socket(int& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || listen(fd, 1) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return -1;
  }
  port = ntohs(address.sin_port);
  return fd;
}

// Memory-backed when the machine has /dev/shm: rank 0's fsyncs (config, checkpoints) then cannot stall behind
// other processes' disk writes for longer than dist.timeout_s, which the waiting rank would rightly report.
std::filesystem::path scratch_parent() {
  std::error_code ec;
  return std::filesystem::is_directory("/dev/shm", ec) && access("/dev/shm", W_OK) == 0
             ? std::filesystem::path("/dev/shm")
             : std::filesystem::temp_directory_path();
}

class TrainMpiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "data");
    // 32 images: 4 steps per epoch for 2 ranks x 4 and for 1 rank x 8, none padded.
    data::testing::write_idx_pair(dir_ / "data", "train", 32, 28, 28, /*gzip=*/false);
    ijepa::testing::write_file(dir_ / "config.yaml", train::testing::tiny_config(dir_ / "data") +
                                                         "logging: {log_every: 1}\n"
                                                         "dist: {backend: mpi, timeout_s: 60}\n");
  }

  // The ijepa-train command line of one rank writing into run folder `run`.
  std::string train_args(const std::string& run, const std::string& extra = "") const {
    return binary_path("ijepa-train") + " --config " + (dir_ / "config.yaml") +
           " --set logging.folder=" + (dir_ / run) + " " + extra;
  }
  ijepa::testing::CommandResult run_ranks(int ranks, const std::string& run, const std::string& extra = "") const {
    return run_command(mpirun_prefix(run) + " -np " + std::to_string(ranks) + " " + train_args(run, extra));
  }
  // Starts 2 ranks in the background; returns the pid of the `timeout` guard around mpirun.
  pid_t spawn_ranks(const std::string& run, const std::vector<std::string>& mpirun_options,
                    const std::string& extra) const {
    std::string command = mpirun_prefix(run);
    for (const auto& o : mpirun_options) command += " " + o;
    return ijepa::testing::spawn({"/bin/sh", "-c", "exec " + command + " -np 2 " + train_args(run, extra)},
                                 dir_ / (run + ".log"));
  }
  // Waits until rank 0 of `run` has logged `rows` steps; false when it did not within the guard.
  bool wait_for_rows(const std::string& run, int64_t rows) const {
    const auto deadline = Clock::now() + std::chrono::seconds(kGuardSeconds);
    while (Clock::now() < deadline) {
      if (line_count(dir_ / (run + "/jepa_r0.csv")) >= rows + 1) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  nlohmann::json summary(const std::string& run) const {
    return nlohmann::json::parse(read_file(dir_ / (run + "/summary.json")));
  }

  TempDir dir_{scratch_parent()};
};

// Largest absolute difference between the tensors of `key` (encoder, predictor, ...) in two checkpoints.
double max_difference(const std::string& a_path, const std::string& b_path, const std::string& key) {
  const auto a = model::read_torch_file(a_path).at(key).toGenericDict();
  const auto b = model::read_torch_file(b_path).at(key).toGenericDict();
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& entry : a) {
    const auto ta = entry.value().toTensor(), tb = b.at(entry.key()).toTensor();
    worst = std::max(worst, (ta - tb).abs().max().item<double>());
  }
  return worst;
}

TEST_F(TrainMpiTest, TwoRanksWithBatchBTrainAsOneRankWithBatch2BAndLogTheGlobalMeanLoss) {
  // 5 steps: the fifth is the first of epoch 2, so the next epoch's shuffle is covered too.
  const auto two = run_ranks(2, "two", "--set optimization.max_steps=5");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const auto one = run_ranks(1, "one", "--set optimization.max_steps=5 --set data.batch_size=8");
  ASSERT_EQ(one.exit_code, 0) << one.output;

  // Weights: equal up to the order of floating-point sums (seen: 2.3e-7; one AdamW step moves them by ~lr=1e-3).
  const std::string two_ckpt = dir_ / "two/jepa-latest.pth.tar", one_ckpt = dir_ / "one/jepa-latest.pth.tar";
  for (const char* key : {"encoder", "target_encoder", "predictor"}) {
    EXPECT_LT(max_difference(two_ckpt, one_ckpt, key), 1e-5) << key;
  }

  // Loss: every rank logs the mean over both ranks, which is the loss of the 2B batch.
  const auto rank0 = csv_steps(dir_ / "two/jepa_r0.csv"), rank1 = csv_steps(dir_ / "two/jepa_r1.csv");
  const auto single = csv_steps(dir_ / "one/jepa_r0.csv");
  ASSERT_EQ(rank0.size(), 5u);
  ASSERT_EQ(rank1.size(), 5u);
  ASSERT_EQ(single.size(), 5u);
  for (size_t i = 0; i < single.size(); ++i) {
    SCOPED_TRACE("step " + single[i].step);
    EXPECT_EQ(rank0[i].step, single[i].step);
    EXPECT_EQ(rank0[i].epoch + "/" + rank0[i].itr, single[i].epoch + "/" + single[i].itr);
    EXPECT_EQ(rank0[i].mask_a + "/" + rank0[i].mask_b, single[i].mask_a + "/" + single[i].mask_b);
    EXPECT_EQ(rank0[i].loss, rank1[i].loss);
    EXPECT_NEAR(rank0[i].loss, single[i].loss, 1e-5);
  }
  // Rank 0 alone names the buckets: ViT-tiny's 23 MiB of gradients under 25 MiB caps would fill two, and
  // dist.min_buckets (8) lowers the caps so that there are more, without the hint about too few.
  const auto plan = two.output.find("gradient all-reduce in ");
  ASSERT_NE(plan, std::string::npos) << two.output;
  EXPECT_EQ(two.output.find("gradient all-reduce in", plan + 1), std::string::npos) << two.output;
  EXPECT_GE(std::stoi(two.output.substr(plan + std::string("gradient all-reduce in ").size())), 8) << two.output;
  EXPECT_EQ(two.output.find("with so few", plan), std::string::npos) << two.output;

  const auto s2 = summary("two"), s1 = summary("one");
  EXPECT_EQ(s2["world_size"], 2);
  EXPECT_GT(s2["communication_wait_seconds"].get<double>(), 0.0) << "two ranks wait for the last bucket";
  EXPECT_EQ(s1["communication_wait_seconds"].get<double>(), 0.0) << "one rank has nothing to synchronise";
  EXPECT_EQ(s2["steps"], 5);
  EXPECT_NEAR(s2["last_loss"].get<double>(), s1["last_loss"].get<double>(), 1e-5);
  EXPECT_NEAR(s2["last_loss"].get<double>(), rank0.back().loss, 1e-5);
}

TEST_F(TrainMpiTest, AStoppedTwoRankRunResumesBitExactly) {
  // SIGTERM to rank 0 only: the ranks agree on the step to stop at, rank 0 checkpoints, both exit 143.
  const pid_t guard = spawn_ranks("resumed", {}, "");
  ASSERT_TRUE(wait_for_rows("resumed", 2)) << read_file(dir_ / "resumed.log");
  const pid_t rank0 = rank_pid("resumed", 0);
  ASSERT_GT(rank0, 0);
  kill(rank0, SIGTERM);
  const int stopped = ijepa::testing::wait_exit_code(guard);
  ASSERT_EQ(stopped, 143) << read_file(dir_ / "resumed.log");
  ASSERT_EQ(summary("resumed")["exit_reason"], "signal");
  const int64_t stop_step = summary("resumed")["steps"];
  ASSERT_GE(stop_step, 2);

  // Three more steps after the resume; an uninterrupted run to the same step.
  const std::string until = "--set optimization.max_steps=" + std::to_string(stop_step + 3);
  const auto resumed = run_ranks(2, "resumed", until + " --set meta.load_checkpoint=true");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;
  const auto straight = run_ranks(2, "straight", until);
  ASSERT_EQ(straight.exit_code, 0) << straight.output;

  const auto a = summary("straight"), b = summary("resumed");
  EXPECT_EQ(b["steps"], stop_step + 3);
  EXPECT_EQ(b["world_size"], 2);
  EXPECT_EQ(a["encoder_sha256"], b["encoder_sha256"]);
  EXPECT_EQ(a["target_encoder_sha256"], b["target_encoder_sha256"]);
  EXPECT_EQ(a["last_loss"], b["last_loss"]);
}

TEST_F(TrainMpiTest, AResumeWithAnotherWorldSizeContinuesTheEpochWhereItStoppedOrIsRefused) {
  // 2 ranks x batch 4 stop after the first of the epoch's 4 steps, having taken 8 of its 32 samples.
  const std::string epoch = "--set optimization.epochs=1";
  const auto first = run_ranks(2, "world", epoch + " --set optimization.max_steps=1");
  ASSERT_EQ(first.exit_code, 0) << first.output;

  // 3 ranks x 4 take 12 samples a step: none starts at sample 8, so the epoch would repeat or skip samples.
  const auto three = run_ranks(3, "world", epoch + " --set meta.load_checkpoint=true");
  EXPECT_EQ(three.exit_code, 2) << three.output;
  EXPECT_NE(three.output.find("written after 8 samples of epoch 1 (1 step of 2 ranks x batch 4); with 3 ranks x "
                              "data.batch_size 4 no batch starts there"),
            std::string::npos)
      << three.output;

  // 1 rank x 4 goes on at its batch 2 (sample 8) and ends the epoch 6 steps later, each sample seen once.
  const auto one = run_ranks(1, "world", epoch + " --set meta.load_checkpoint=true");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  EXPECT_EQ(summary("world")["steps"], 7);
  const auto rows = csv_steps(dir_ / "world/jepa_r0.csv");
  ASSERT_EQ(rows.size(), 7u);
  EXPECT_EQ(rows[0].itr, "0");
  EXPECT_EQ(rows[1].itr, "2");
  EXPECT_EQ(rows[6].itr, "7");
}

TEST_F(TrainMpiTest, AKilledRankMakesTheOtherFailNamingItWithinTheTimeout) {
  // mpirun is told not to end the job itself when a rank dies (as srun does not), so rank 0 must notice.
  const pid_t guard = spawn_ranks("killed", {"--mca orte_abort_on_non_zero_status 0"}, "--set dist.timeout_s=5");
  ASSERT_TRUE(wait_for_rows("killed", 2)) << read_file(dir_ / "killed.log");
  const pid_t rank1 = rank_pid("killed", 1);
  ASSERT_GT(rank1, 0);
  const auto killed_at = Clock::now();
  kill(rank1, SIGKILL);
  const int code = ijepa::testing::wait_exit_code(guard);
  const double seconds = std::chrono::duration<double>(Clock::now() - killed_at).count();
  const std::string log = read_file(dir_ / "killed.log");
  EXPECT_NE(code, 0) << log;
  EXPECT_NE(code, 124) << "the guard had to end the job:\n" << log;
  // A hang bound, not a speed check: dist.timeout_s (5 s) plus a wide margin for a loaded machine.
  EXPECT_LT(seconds, 5 + 40) << log;
  EXPECT_NE(log.find("did not complete within 5 s on rank 0 of 2; not arrived and not answering"), std::string::npos)
      << log;
  EXPECT_NE(log.find("): rank 1"), std::string::npos) << log;
}

TEST_F(TrainMpiTest, AnInputErrorOnOneRankEndsTheJobAtOnceWithExitCodeTwo) {
  // Rank 1's /metrics port (base + 1) is taken: only rank 1 fails, after rank 0 went on into training.
  int taken = 0;
  const int socket = listening_socket(taken);
  ASSERT_GE(socket, 0);
  const auto r = run_ranks(2, "busy", "--set metrics.listen=127.0.0.1:" + std::to_string(taken - 1));
  close(socket);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("rank 1 aborting the job: metrics listen address"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("did not complete within"), std::string::npos) << "rank 0 waited for the timeout";
}

TEST_F(TrainMpiTest, RanksWithDifferentConfigsAreRefusedAtStartNamingTheKeyAndRank) {
  const std::string rank0 = train_args("mismatch", "--set optimization.lr=0.001");
  const std::string rank1 = train_args("mismatch", "--set optimization.lr=0.002");
  const auto r = run_command(mpirun_prefix("mismatch") + " -np 1 " + rank0 + " : -np 1 " + rank1);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("config differs across ranks: rank 1 differs from rank 0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 0 has 'optimization.lr: 0.001', rank 1 has 'optimization.lr: 0.002'"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "mismatch/jepa_r0.csv")) << "training started";
}

}  // namespace
}  // namespace ijepa::train
