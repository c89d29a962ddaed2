// Broadcast of start-up state and cross-rank agreement checks.
#include "dist/consistency.h"

#include <torch/torch.h>

#include <sstream>

#include "common/errors.h"
#include "common/sha256.h"

namespace ijepa::dist {
namespace {

std::string sha256_hex(const std::string& value) {
  common::Sha256 hash;
  hash.update(value);
  return hash.hex_digest();
}

// Ranks (other than 0) whose item differs from rank 0's.
std::vector<int> ranks_differing_from_0(const std::vector<std::string>& items) {
  std::vector<int> ranks;
  for (size_t r = 1; r < items.size(); ++r) {
    if (items[r] != items[0]) ranks.push_back(static_cast<int>(r));
  }
  return ranks;
}

std::string name_ranks(const std::vector<int>& ranks) {
  std::ostringstream out;
  out << (ranks.size() > 1 ? "ranks " : "rank ");
  for (size_t i = 0; i < ranks.size(); ++i) out << (i ? ", " : "") << ranks[i];
  out << (ranks.size() > 1 ? " differ" : " differs") << " from rank 0";
  return out.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string clip(const std::string& text) { return text.size() <= 160 ? text : text.substr(0, 157) + "..."; }

std::string first_difference(const std::string& a, const std::string& b, int rank) {
  const auto lines_a = lines_of(a), lines_b = lines_of(b);
  for (size_t i = 0; i < std::max(lines_a.size(), lines_b.size()); ++i) {
    const std::string line_a = i < lines_a.size() ? "'" + clip(lines_a[i]) + "'" : "nothing";
    const std::string line_b = i < lines_b.size() ? "'" + clip(lines_b[i]) + "'" : "nothing";
    if (line_a != line_b) {
      return "first difference at line " + std::to_string(i + 1) + ": rank 0 has " + line_a + ", rank " +
             std::to_string(rank) + " has " + line_b;
    }
  }
  return "same lines, different bytes";
}

std::string describe_tensors(const std::vector<torch::Tensor>& tensors) {
  std::ostringstream out;
  for (size_t i = 0; i < tensors.size(); ++i) {
    out << "tensor " << i << " " << tensors[i].sizes() << " " << tensors[i].scalar_type() << "\n";
  }
  out << tensors.size() << " tensors\n";
  return out.str();
}

// Consecutive runs of tensors of one dtype, each at most max_bytes (a larger tensor forms its own run).
std::vector<std::pair<size_t, size_t>> pack_runs(const std::vector<torch::Tensor>& tensors, int64_t max_bytes) {
  std::vector<std::pair<size_t, size_t>> runs;
  size_t begin = 0;
  int64_t bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const bool fits = i > begin && tensors[i].scalar_type() == tensors[begin].scalar_type() &&
                      bytes + static_cast<int64_t>(tensors[i].nbytes()) <= max_bytes;
    if (i > begin && !fits) {
      runs.emplace_back(begin, i);
      begin = i;
      bytes = 0;
    }
    bytes += static_cast<int64_t>(tensors[i].nbytes());
  }
  if (begin < tensors.size()) runs.emplace_back(begin, tensors.size());
  return runs;
}

}  // namespace

void verify_same_across_ranks(Communicator& comm, const std::string& what, const std::string& value) {
  const auto hashes = comm.all_gather_bytes(sha256_hex(value));
  const std::vector<int> differing = ranks_differing_from_0(hashes);
  if (differing.empty()) return;
  const auto values = comm.all_gather_bytes(value);
  throw common::InputError(what + " differs across ranks: " + name_ranks(differing) + "; " +
                           first_difference(values[0], values[differing[0]], differing[0]));
}

void broadcast_tensors(Communicator& comm, const std::vector<torch::Tensor>& tensors, int root,
                       int64_t max_buffer_bytes) {
  verify_same_across_ranks(comm, "the tensor list to broadcast", describe_tensors(tensors));
  const torch::NoGradGuard no_grad;
  for (const auto& [begin, end] : pack_runs(tensors, max_buffer_bytes)) {
    std::vector<torch::Tensor> flat;
    for (size_t i = begin; i < end; ++i) flat.push_back(tensors[i].detach().reshape(-1));
    int64_t numel = 0;
    for (const auto& t : flat) numel += t.numel();
    torch::Tensor buffer = comm.rank() == root ? torch::cat(flat) : torch::empty({numel}, flat[0].options());
    comm.broadcast(buffer, root)->wait();
    if (comm.rank() == root) continue;
    int64_t offset = 0;
    for (size_t i = begin; i < end; ++i) {
      tensors[i].copy_(buffer.narrow(0, offset, tensors[i].numel()).view(tensors[i].sizes()));
      offset += tensors[i].numel();
    }
  }
}

std::string tensors_sha256(const std::vector<torch::Tensor>& tensors) {
  common::Sha256 hash;
  for (const auto& tensor : tensors) {
    const torch::Tensor host = tensor.detach().to(torch::kCPU).contiguous();
    hash.update(host.data_ptr(), host.nbytes());
  }
  return hash.hex_digest();
}

void verify_tensors_match(Communicator& comm, const std::string& what, const std::vector<torch::Tensor>& tensors) {
  const std::vector<int> differing = ranks_differing_from_0(comm.all_gather_bytes(tensors_sha256(tensors)));
  if (!differing.empty()) throw DistError(what + " diverged across ranks: " + name_ranks(differing));
}

}  // namespace ijepa::dist
