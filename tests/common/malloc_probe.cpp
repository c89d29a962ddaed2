// Minor page faults of allocating, touching and freeing a 16 MiB block four more times after a first time, on a
// thread of its own (a malloc arena other than the main one, as the training step's second thread has), after
// common::keep_freed_memory() when the first argument is "keep"; then the tuning's description (for
// malloc_tuning_test).
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/malloc_tuning.h"

namespace {

constexpr size_t kBlock = 16 << 20;

long thread_minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_minflt;
}

void touch_and_free(size_t bytes) {
  auto* block = static_cast<volatile char*>(std::malloc(bytes));
  for (size_t i = 0; i < bytes; i += 4096) block[i] = 1;
  std::free(const_cast<char*>(block));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "keep") ijepa::common::keep_freed_memory();
  long repeat_faults = 0;
  std::thread([&] {
    touch_and_free(kBlock);
    const long before = thread_minor_faults();
    for (int i = 0; i < 4; ++i) touch_and_free(kBlock);
    repeat_faults = thread_minor_faults() - before;
  }).join();
  std::printf("repeat_faults=%ld\n%s\n", repeat_faults, ijepa::common::malloc_tuning_description().c_str());
  return 0;
}
