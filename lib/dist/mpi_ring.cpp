#include "dist/mpi_ring.h"

#include <c10/util/BFloat16.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace ijepa::dist {
namespace {

constexpr int kRingTag = 0x4a45;  // point-to-point traffic of the ring on the communicator's own matching space

template <typename T>
void add_into(void* destination, const void* source, int64_t count) {
  auto* d = static_cast<T*>(destination);
  const auto* s = static_cast<const T*>(source);
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    for (int64_t i = 0; i < count; ++i) d[i] = c10::BFloat16(static_cast<float>(d[i]) + static_cast<float>(s[i]));
  } else {
    for (int64_t i = 0; i < count; ++i) d[i] += s[i];
  }
}

using AddFn = void (*)(void*, const void*, int64_t);

AddFn add_for(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat:
      return &add_into<float>;
    case torch::kDouble:
      return &add_into<double>;
    case torch::kBFloat16:
      return &add_into<c10::BFloat16>;
    case torch::kInt:
      return &add_into<int32_t>;
    case torch::kLong:
      return &add_into<int64_t>;
    default:
      throw std::invalid_argument("ring all-reduce: unsupported dtype");  // check_reducible rejected it already
  }
}

// Elements [begin, end) of chunk c of n over count elements.
std::pair<int64_t, int64_t> chunk(int64_t count, int world, int c) {
  return {count * c / world, count * (c + 1) / world};
}

// A received segment waiting to be added (at the start of the next phase, once its receive has completed).
struct PendingAdd {
  int64_t offset = 0, count = 0;  // elements
};

struct Ring {
  torch::Tensor tensor;
  MPI_Comm comm;
  int left, right;
  int64_t element_size;
  AddFn add;
  std::shared_ptr<RingScratch> scratch;
  PendingAdd pending;

  char* at(int64_t element) const { return static_cast<char*>(tensor.data_ptr()) + element * element_size; }
  void add_pending() {
    if (pending.count > 0) add(at(pending.offset), scratch->bytes.data(), pending.count);
    pending = {};
  }
  void send(int64_t offset, int64_t count, std::vector<MPI_Request>& requests) const {
    IJEPA_MPI_CHECK(MPI_Isend(at(offset), static_cast<int>(count * element_size), MPI_BYTE, right, kRingTag, comm,
                              &requests.emplace_back(MPI_REQUEST_NULL)));
  }
  void receive(void* into, int64_t count, std::vector<MPI_Request>& requests) const {
    IJEPA_MPI_CHECK(MPI_Irecv(into, static_cast<int>(count * element_size), MPI_BYTE, left, kRingTag, comm,
                              &requests.emplace_back(MPI_REQUEST_NULL)));
  }
};

}  // namespace

std::vector<MpiPhase> ring_all_reduce_phases(const torch::Tensor& tensor, MPI_Comm comm, int rank, int world,
                                             int64_t segment_bytes, std::shared_ptr<RingScratch> scratch) {
  const int64_t element_size = static_cast<int64_t>(tensor.element_size());
  const int64_t segment = std::max<int64_t>(1, segment_bytes / element_size);  // elements
  if (scratch->bytes.size() < static_cast<size_t>(segment * element_size)) {
    // Never resized here: a ring still in flight may be receiving into it.
    throw std::logic_error("ring all-reduce: the scratch buffer is smaller than a segment");
  }
  auto ring = std::make_shared<Ring>(Ring{tensor,
                                          comm,
                                          (rank + world - 1) % world,
                                          (rank + 1) % world,
                                          element_size,
                                          add_for(tensor.scalar_type()),
                                          std::move(scratch),
                                          {}});
  const int64_t count = tensor.numel();
  std::vector<MpiPhase> phases;
  for (int step = 0; step + 1 < world; ++step) {
    const auto [send_begin, send_end] = chunk(count, world, (rank - step + world) % world);
    const auto [receive_begin, receive_end] = chunk(count, world, (rank - step - 1 + world) % world);
    const int64_t longest = std::max(send_end - send_begin, receive_end - receive_begin);
    for (int64_t at = 0; at < longest; at += segment) {
      // Both neighbours cut a chunk into the same segments, so segment k from the left is my segment k.
      const int64_t send_count = std::clamp<int64_t>(send_end - send_begin - at, 0, segment);
      const int64_t receive_count = std::clamp<int64_t>(receive_end - receive_begin - at, 0, segment);
      phases.push_back([ring, send_offset = send_begin + at, send_count, receive_offset = receive_begin + at,
                        receive_count](std::vector<MPI_Request>& requests) {
        ring->add_pending();  // the previous segment (its chunk may be the one sent now)
        if (receive_count > 0) ring->receive(ring->scratch->bytes.data(), receive_count, requests);
        if (send_count > 0) ring->send(send_offset, send_count, requests);
        ring->pending = {receive_offset, receive_count};
      });
    }
  }
  for (int step = 0; step + 1 < world; ++step) {
    const auto [send_begin, send_end] = chunk(count, world, (rank + 1 - step + world) % world);
    const auto [receive_begin, receive_end] = chunk(count, world, (rank - step + world) % world);
    phases.push_back(
        [ring, send_begin, send_end, receive_begin, receive_end, segment](std::vector<MPI_Request>& requests) {
          ring->add_pending();  // the last reduce-scatter segment, before its chunk is sent on
          for (int64_t at = receive_begin; at < receive_end; at += segment)
            ring->receive(ring->at(at), std::min(segment, receive_end - at), requests);
          for (int64_t at = send_begin; at < send_end; at += segment)
            ring->send(at, std::min(segment, send_end - at), requests);
        });
  }
  return phases;
}

}  // namespace ijepa::dist
