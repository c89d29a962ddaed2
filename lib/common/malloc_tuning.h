// glibc malloc's settings for the project's LibTorch processes.
//
// glibc gives a freed block above its mmap threshold back to the kernel at once (the threshold starts at 128 KiB
// and follows the blocks freed up to 32 MiB), and trims the top of a heap once more than its trim threshold is
// free there. A training step frees and allocates the same activations, a few MiB each, every step, so every step
// faulted them in again page by page: 7-8.5 thousand minor page faults a step of the benchmark workloads, whose
// steps ran 2-15% faster without them (BENCHMARKS.md). As PyTorch's caching allocator does on a GPU, the process
// keeps what it freed for the next step instead; its resident memory stays near its peak (13% more there).
#pragma once

#include <string>

namespace ijepa::common {

// Unless the user tuned glibc's malloc (GLIBC_TUNABLES naming glibc.malloc, or a MALLOC_*_ variable), sets the
// mmap threshold to its largest value (32 MiB) and the trim threshold to 2 GiB (the largest mallopt takes), so
// that heaps are trimmed only when that much of them is free. Call first thing in main.
void keep_freed_memory();

// One line for the start-up log: what keep_freed_memory() did and why.
std::string malloc_tuning_description();

}  // namespace ijepa::common
