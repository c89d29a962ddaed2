// Bucket planning and the layout description compared across ranks.
#include "dist/bucket_layout.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace ijepa::dist {

std::string describe_bucket_plan(const std::vector<Bucket>& buckets) {
  std::ostringstream out;
  out << "gradient all-reduce in " << buckets.size() << (buckets.size() == 1 ? " bucket" : " buckets");
  out.setf(std::ios::fixed);
  out.precision(1);
  for (size_t b = 0; b < buckets.size(); ++b) {
    const double bytes =
        static_cast<double>(buckets[b].numel) * static_cast<double>(c10::elementSize(buckets[b].dtype));
    out << (b == 0 ? ": " : " + ") << bytes / (1 << 20);
  }
  if (!buckets.empty()) out << " MiB";
  if (buckets.size() <= 2) {
    out << "; with so few, most gradients start their all-reduce only at the end of backward and little of it is "
           "hidden (a larger dist.min_buckets makes more, down to buckets of dist.first_bucket_mb: BENCHMARKS.md, "
           "\"Communication hidden behind backward\")";
  }
  return out.str();
}

int64_t bucket_cap_bytes(int64_t gradient_bytes, int64_t first_bucket_bytes, int64_t bucket_bytes,
                         int64_t min_buckets) {
  if (min_buckets <= 0) throw std::invalid_argument("bucket_cap_bytes: min_buckets must be positive");
  const int64_t share = (gradient_bytes + min_buckets - 1) / min_buckets;
  return std::min(bucket_bytes, std::max(first_bucket_bytes, share));
}

std::vector<Bucket> plan_buckets(const std::vector<torch::Tensor>& parameters, int64_t first_bucket_bytes,
                                 int64_t bucket_bytes) {
  if (first_bucket_bytes <= 0 || bucket_bytes <= 0) throw std::invalid_argument("plan_buckets: caps must be positive");
  std::vector<Bucket> buckets;
  Bucket open;
  auto close = [&] {
    if (open.slots.empty()) return;
    buckets.push_back(std::move(open));
    open = Bucket();
  };
  for (int64_t i = static_cast<int64_t>(parameters.size()) - 1; i >= 0; --i) {
    const torch::Tensor& parameter = parameters[i];
    if (!open.slots.empty() && open.dtype != parameter.scalar_type()) close();
    if (open.slots.empty()) open.dtype = parameter.scalar_type();
    open.slots.push_back({i, open.numel, parameter.numel()});
    open.numel += parameter.numel();
    const int64_t cap = buckets.empty() ? first_bucket_bytes : bucket_bytes;
    if (open.numel * static_cast<int64_t>(c10::elementSize(open.dtype)) >= cap) close();
  }
  close();
  return buckets;
}

std::string describe_layout(const std::vector<std::string>& names, const std::vector<torch::Tensor>& parameters,
                            const std::vector<Bucket>& buckets) {
  std::vector<std::string> placement(parameters.size());
  for (size_t b = 0; b < buckets.size(); ++b) {
    for (const BucketSlot& slot : buckets[b].slots) {
      placement[slot.parameter] = "bucket " + std::to_string(b) + " offset " + std::to_string(slot.offset);
    }
  }
  std::ostringstream out;
  for (size_t i = 0; i < parameters.size(); ++i) {
    out << i << " " << names.at(i) << " " << parameters[i].sizes() << " " << parameters[i].scalar_type() << " "
        << placement[i] << "\n";
  }
  return out.str();
}

int64_t mib_to_bytes(double mib) { return static_cast<int64_t>(mib * 1024.0 * 1024.0); }

}  // namespace ijepa::dist
