// How gradients are laid out in buckets for the all-reduce, as PyTorch DDP does it.
//
// Buckets are filled walking the parameters in reverse registration order, since backward produces the
// gradients of the last layers first: the first bucket is then complete early and its all-reduce overlaps
// the rest of backward. A bucket closes once it holds at least its cap (a small first bucket starts
// communication sooner, the larger later ones amortise per-call costs), so it may exceed the cap by its last
// parameter; a parameter of another dtype also starts a new bucket.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ijepa::dist {

struct BucketSlot {
  int64_t parameter = 0;  // index into the parameter list
  int64_t offset = 0;     // first element within the bucket
  int64_t numel = 0;
};

struct Bucket {
  torch::ScalarType dtype = torch::kFloat;
  int64_t numel = 0;
  std::vector<BucketSlot> slots;  // in reverse registration order
};

// The cap of the buckets after the first, in bytes: bucket_bytes (dist.bucket_mb), lowered for a model whose
// gradients would fill fewer than about min_buckets buckets, never below first_bucket_bytes. A bucket's all-reduce
// starts once its last gradient exists, so a model in one or two buckets (ViT-tiny's 23 MiB under DDP's 25 MiB)
// waits for the end of backward and hides little of its communication; large models keep bucket_bytes.
int64_t bucket_cap_bytes(int64_t gradient_bytes, int64_t first_bucket_bytes, int64_t bucket_bytes, int64_t min_buckets);

// parameters: in registration order. Caps in bytes; both must be positive.
std::vector<Bucket> plan_buckets(const std::vector<torch::Tensor>& parameters, int64_t first_bucket_bytes,
                                 int64_t bucket_bytes);

// One line per parameter, in registration order: "<index> <name> [d0, d1] <dtype> bucket <b> offset <o>".
// Equal on every rank exactly when names, shapes, dtypes and buckets agree.
std::string describe_layout(const std::vector<std::string>& names, const std::vector<torch::Tensor>& parameters,
                            const std::vector<Bucket>& buckets);

// "gradient all-reduce in 9 buckets: 1.0 + 2.7 + ... MiB" (in the order they are filled), with a hint where one
// or two buckets leave most of the communication to the end of backward.
std::string describe_bucket_plan(const std::vector<Bucket>& buckets);

// Megabytes of the config (dist.bucket_mb) to bytes: MiB, as DDP's bucket_cap_mb.
int64_t mib_to_bytes(double mib);

}  // namespace ijepa::dist
