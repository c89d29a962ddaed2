// Stop requests by signal. SIGTERM, SIGINT and SIGUSR1 (Slurm's preemption warning) set a flag that the
// training loop polls between steps: it finishes the step, checkpoints and exits 128 + the signal. The same
// signal again ends the process at once (its default action).
#pragma once

namespace ijepa::common {

// Installs the handlers (idempotent).
void install_stop_handlers();

// The signal that asked to stop, or 0.
int stop_signal();

// Requests a stop without a signal (a coordinator's stop command, tests).
void request_stop(int signal_number);

}  // namespace ijepa::common
