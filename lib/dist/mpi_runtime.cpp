// MPI start-up and shutdown.
#include "dist/mpi_runtime.h"

#include <cstdlib>
#include <mutex>
#include <string>

#include "common/log.h"
#include "dist/errors.h"

namespace ijepa::dist {

void mpi_check(int code, const char* call, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  throw DistError("MPI error in " + std::string(call) + " (" + file + ":" + std::to_string(line) +
                  "): " + std::string(text, static_cast<size_t>(length)));
}

std::shared_ptr<MpiRuntime> MpiRuntime::acquire() {
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
