// Check macros for CUDA runtime and NCCL calls (internal to the NCCL backend).
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

// Throws DistError "CUDA error in <call> (file:line): <message>" unless the call returns cudaSuccess.
#define IJEPA_CUDA_CHECK(call) ::ijepa::dist::cuda_check((call), #call, __FILE__, __LINE__)
// Throws DistError "NCCL error in <call> (file:line): <message>" unless the call returns ncclSuccess or, as
// calls on a non-blocking communicator may, ncclInProgress (then ncclCommGetAsyncError says when it is done).
#define IJEPA_NCCL_CHECK(call) ::ijepa::dist::nccl_check((call), #call, __FILE__, __LINE__)

namespace ijepa::dist {

void cuda_check(cudaError_t code, const char* call, const char* file, int line);
void nccl_check(ncclResult_t code, const char* call, const char* file, int line);

}  // namespace ijepa::dist
