// MPI_Init_thread / MPI_Finalize held by one RAII object per process, the check macro for MPI calls, and the
// watchdog for MPI calls that wait for every rank without a timeout of their own.
//
// Communicators share the runtime through shared_ptr: MPI starts with the first and finalizes after the
// last. A main (or a test main) that holds its own reference keeps MPI up across communicators, since MPI
// cannot start twice in one process. After a collective failure, finalize is skipped: it would wait for
// peers that may be gone.
#pragma once

#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

// Throws DistError "MPI error in <call> (file:line): <MPI's message>" when the call does not succeed.
#define IJEPA_MPI_CHECK(call) ::ijepa::dist::mpi_check((call), #call, __FILE__, __LINE__)

namespace ijepa::dist {

void mpi_check(int code, const char* call, const char* file, int line);
// MPI's text for an error code, e.g. "MPI_ERR_TRUNCATE: message truncated".
std::string mpi_error_string(int code);

// Ends the job with `report` (logged) unless destroyed within timeout_s: the guard around MPI calls that return
// only once every rank has made them and that no timeout of MPI's own bounds (MPI_Init, creating communicators).
// Before MPI has started (mpi_started false) the process exits with status 1; after, MPI_Abort ends every rank.
class MpiWatchdog {
 public:
  MpiWatchdog(double timeout_s, std::string report, bool mpi_started);
  ~MpiWatchdog();
  MpiWatchdog(const MpiWatchdog&) = delete;
  MpiWatchdog& operator=(const MpiWatchdog&) = delete;

 private:
  void watch(double timeout_s);

  const std::string report_;
  const bool mpi_started_;
  std::mutex mutex_;
  std::condition_variable disarmed_or_timeout_;
  bool disarmed_ = false;
  std::thread thread_;  // last: started once the members it uses exist
};

class MpiRuntime {
 public:
  // Initialises MPI with MPI_THREAD_MULTIPLE (communication runs on its own thread), or adopts an MPI that
  // was initialised elsewhere (whoever did so finalizes). Sets MPI_ERRORS_RETURN on MPI_COMM_WORLD so that
  // failures come back as errors with a message instead of aborting the job silently. Throws DistError when
  // MPI was already finalized or offers less than MPI_THREAD_MULTIPLE.
  //
  // MPI_Init returns only once every rank of the job has reached it, and cannot be interrupted: where it has not
  // returned within start_timeout_s (a rank that never started, is stuck before MPI, or cannot be reached), the
  // process prints one line naming its rank and exits with status 1, as a collective past its timeout ends the job.
  static std::shared_ptr<MpiRuntime> acquire(double start_timeout_s);

  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  // A collective failed or was abandoned: do not finalize (the process exits without it).
  void mark_failed() { failed_ = true; }
  bool failed() const { return failed_; }

 private:
  explicit MpiRuntime(bool owns_init) : owns_init_(owns_init) {}

  bool owns_init_;
  std::atomic<bool> failed_{false};
};

}  // namespace ijepa::dist
