#include "common/signals.h"

#include <atomic>
#include <csignal>
#include <initializer_list>

namespace ijepa::common {

namespace {
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void on_stop_signal(int signal_number) { g_stop_signal.store(signal_number); }
}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  // The same signal a second time takes its default action and ends the process at once: the loop only polls
  // the flag between steps, and a read that hangs or a long evaluation would otherwise leave no way out.
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  for (int s : {SIGTERM, SIGINT, SIGUSR1}) sigaction(s, &action, nullptr);
}

int stop_signal() { return g_stop_signal.load(); }

void request_stop(int signal_number) { g_stop_signal.store(signal_number); }

}  // namespace ijepa::common
