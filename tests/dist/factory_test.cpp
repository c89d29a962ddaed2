// make_communicator's choice of backend and GPU, its errors, and launch detection from the environment.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>

#include "common/errors.h"
#include "dist/communicator.h"
#include "dist/launch.h"
#include "input_error.h"
#ifdef IJEPA_DIST_HAVE_MPI
#include "dist/mpi_communicator.h"
#endif
#ifdef IJEPA_DIST_HAVE_NCCL
#include "dist/nccl_communicator.h"
#endif

namespace ijepa::dist {
namespace {

using Variables = std::map<std::string, std::string>;

// Sets launcher variables for one test and restores what was there.
class LaunchVariables {
 public:
  explicit LaunchVariables(const Variables& values = {}) {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK", "PMIX_RANK",
                             "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"}) {
      const char* old = std::getenv(name);
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
      unsetenv(name);
    }
    for (const auto& [name, value] : values) setenv(name.c_str(), value.c_str(), 1);
  }
  ~LaunchVariables() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

common::DistConfig with_backend(const std::string& backend) {
  common::DistConfig config;
  config.backend = backend;
  return config;
}

std::string input_error_of(const common::DistConfig& config, torch::Device device) {
  return ijepa::testing::input_error_of([&] { make_communicator(config, device); });
}

TEST(Launch, ReadsTheLaunchersVariables) {
  {
    LaunchVariables env;
    EXPECT_FALSE(detect_launch().under_mpi);
    EXPECT_EQ(detect_launch().world_size, 1);
    EXPECT_EQ(detect_launch().rank, -1);
  }
  {
    LaunchVariables env(Variables{{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_RANK", "3"}});
    EXPECT_TRUE(detect_launch().under_mpi);
    EXPECT_EQ(detect_launch().world_size, 4);
    EXPECT_EQ(detect_launch().rank, 3);
  }
  {
    LaunchVariables env(Variables{{"PMIX_RANK", "1"}, {"SLURM_STEP_NUM_TASKS", "8"}});
    EXPECT_TRUE(detect_launch().under_mpi);
    EXPECT_EQ(detect_launch().world_size, 8);
    EXPECT_EQ(detect_launch().rank, 1);
  }
  {
    LaunchVariables env(Variables{{"PMI_SIZE", "3"}, {"PMI_RANK", "2"}});
    EXPECT_EQ(detect_launch().world_size, 3);
    EXPECT_EQ(detect_launch().rank, 2);
  }
}

TEST(Factory, AutoOnACpuOutsideMpiIsSingleProcess) {
  LaunchVariables env;
  auto comm = make_communicator(with_backend("auto"), torch::kCPU);
  EXPECT_EQ(comm->backend(), "single");
  EXPECT_EQ(make_communicator(with_backend("single"), torch::kCPU)->world_size(), 1);
}

TEST(Factory, RejectsBackendsThatDoNotFit) {
  LaunchVariables env;
  EXPECT_NE(input_error_of(with_backend("gloo"), torch::kCPU).find("dist.backend: unknown backend 'gloo'"),
            std::string::npos);
  EXPECT_NE(input_error_of(with_backend("nccl"), torch::kCPU).find("needs a CUDA device"), std::string::npos);
  EXPECT_NE(input_error_of(with_backend("mpi"), torch::Device(torch::kCUDA, 0)).find("reduces CPU tensors"),
            std::string::npos);
  common::DistConfig config;
  config.timeout_s = 0;
  EXPECT_NE(input_error_of(config, torch::kCPU).find("dist.timeout_s"), std::string::npos);
}

TEST(Factory, SrunWithoutAnMpiPluginIsRefusedButABatchScriptIsOneProcess) {
  {
    LaunchVariables env(Variables{{"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_NTASKS", "2"}});  // srun -n 2 --mpi=none
    EXPECT_EQ(detect_launch().srun_tasks_without_mpi, 2);
    EXPECT_NE(input_error_of(with_backend("auto"), torch::kCPU).find("srun started 2 tasks without an MPI plugin"),
              std::string::npos);
  }
  LaunchVariables batch(Variables{{"SLURM_NTASKS", "2"}});  // the batch script itself (no step task count)
  EXPECT_EQ(detect_launch().srun_tasks_without_mpi, 0);
  EXPECT_EQ(make_communicator(with_backend("auto"), torch::kCPU)->backend(), "single");
}

TEST(Factory, SingleProcessIsAnErrorWhenTheLauncherStartedSeveralRanks) {
  LaunchVariables env(Variables{{"OMPI_COMM_WORLD_SIZE", "2"}});
  EXPECT_NE(input_error_of(with_backend("single"), torch::kCPU).find("the launcher started 2 ranks"),
            std::string::npos);
}

#ifdef IJEPA_DIST_HAVE_MPI
// With a timeout of 0, MPI's start guard once ended the process at once, before the argument was checked.
TEST(Factory, MpiArgumentsAreCheckedBeforeMpiStarts) {
  LaunchVariables env;
  EXPECT_THROW(MpiCommunicator(0.0), std::invalid_argument);
  EXPECT_THROW(MpiCommunicator(-1.0), std::invalid_argument);
  MpiTuning tiny_segments;
  tiny_segments.ring_segment_bytes = 8;
  EXPECT_THROW(MpiCommunicator(60.0, tiny_segments), std::invalid_argument);
  int initialized = 1;
  MPI_Initialized(&initialized);
  EXPECT_EQ(initialized, 0);
}
#endif

#ifdef IJEPA_DIST_HAVE_NCCL
TEST(Factory, EachLocalRankGetsAGpuEvenWhenTheLauncherShowsItOnlyItsOwn) {
  EXPECT_EQ(gpu_for_local_rank(3, 8), 3);
  EXPECT_EQ(gpu_for_local_rank(3, 1), 0);  // CUDA_VISIBLE_DEVICES set per rank: its one GPU is device 0
  EXPECT_EQ(gpu_for_local_rank(5, 4), 1);
  EXPECT_THROW(gpu_for_local_rank(0, 0), common::InputError);
}
#endif

}  // namespace
}  // namespace ijepa::dist
