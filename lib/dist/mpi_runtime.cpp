// MPI start-up and shutdown.
#include "dist/mpi_runtime.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "common/log.h"
#include "dist/errors.h"
#include "dist/launch.h"

namespace ijepa::dist {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error code " + std::to_string(code);
  return std::string(text, static_cast<size_t>(length));
}

void mpi_check(int code, const char* call, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  throw DistError("MPI error in " + std::string(call) + " (" + file + ":" + std::to_string(line) +
                  "): " + mpi_error_string(code));
}

MpiWatchdog::MpiWatchdog(double timeout_s, std::string report, bool mpi_started)
    : report_(std::move(report)), mpi_started_(mpi_started), thread_([this, timeout_s] { watch(timeout_s); }) {}

MpiWatchdog::~MpiWatchdog() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    disarmed_ = true;
  }
  disarmed_or_timeout_.notify_one();
  thread_.join();
}

void MpiWatchdog::watch(double timeout_s) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (disarmed_or_timeout_.wait_for(lock, std::chrono::duration<double>(timeout_s), [this] { return disarmed_; })) {
    return;
  }
  log::error(report_);
  // Once MPI runs, MPI_Abort also ends the ranks that are not stuck (srun would leave them running).
  if (mpi_started_) MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

namespace {

// Written before MPI_Init starts: Open MPI sets environment variables while it starts, and reading the environment
// on another thread meanwhile would race with that.
std::string start_report(double timeout_s) {
  const LaunchEnvironment launch = detect_launch();
  const std::string rank = launch.rank >= 0 ? "rank " + std::to_string(launch.rank) : "this rank";
  return log::str("dist: MPI did not start within dist.timeout_s = ", timeout_s, " s on ", rank, " of ",
                  launch.world_size,
                  ": MPI_Init waits for every rank of the job, and at least one has not reached it (not started, "
                  "stuck before MPI, or on a node this one cannot reach); exiting");
}

}  // namespace

std::shared_ptr<MpiRuntime> MpiRuntime::acquire(double start_timeout_s) {
  static std::mutex mutex;
  static std::weak_ptr<MpiRuntime> current;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto runtime = current.lock()) return runtime;

  int finalized = 0;
  IJEPA_MPI_CHECK(MPI_Finalized(&finalized));
  if (finalized) throw DistError("MPI was already finalized; it can start only once per process");
  int initialized = 0;
  IJEPA_MPI_CHECK(MPI_Initialized(&initialized));
  int provided = MPI_THREAD_SINGLE;
  if (initialized) {
    IJEPA_MPI_CHECK(MPI_Query_thread(&provided));
  } else {
    // Open MPI's default MPI_Iallreduce for few ranks reduces to one rank and broadcasts back, half the
    // bandwidth of its blocking MPI_Allreduce; the ring (1) matches it. A user's own setting wins.
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", /*overwrite=*/0);
    const MpiWatchdog watchdog(start_timeout_s, start_report(start_timeout_s), /*mpi_started=*/false);
    IJEPA_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided));
  }
  std::shared_ptr<MpiRuntime> runtime(new MpiRuntime(!initialized));
  if (provided < MPI_THREAD_MULTIPLE) {
    throw DistError("this MPI provides thread level " + std::to_string(provided) +
                    ", below MPI_THREAD_MULTIPLE, which the progress thread of the MPI communicator needs");
  }
  IJEPA_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  current = runtime;
  return runtime;
}

MpiRuntime::~MpiRuntime() {
  if (!owns_init_) return;
  if (failed_) {
    log::warn("dist: skipping MPI_Finalize after a failed collective");
    return;
  }
  const int code = MPI_Finalize();
  if (code != MPI_SUCCESS) log::error(log::str("dist: MPI_Finalize failed (code ", code, ")"));
}

}  // namespace ijepa::dist
