#include "model/state_dict.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/import_read.h>
#include <torch/serialize.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "common/errors.h"
#include "common/files.h"
#include "common/sha256.h"

namespace ijepa::model {

namespace {
constexpr char kDdpPrefix[] = "module.";

std::string without_prefix(const std::string& key) {
  return key.rfind(kDdpPrefix, 0) == 0 ? key.substr(sizeof(kDdpPrefix) - 1) : key;
}

// A file's bytes, already in memory, for PyTorchStreamReader (LibTorch's own VectorReader is not exported).
class BytesReader final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BytesReader(const std::string& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<size_t>(n, bytes_.size() - pos);
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::string& bytes_;  // outlives the reader
};

// " label: k1 k2 ... (+n more);" for a non-empty list of keys, "" for an empty one.
std::string key_list(const char* label, const std::vector<std::string>& keys) {
  if (keys.empty()) return "";
  constexpr size_t kShown = 5;
  std::string text = std::string(" ") + label + ":";
  for (size_t i = 0; i < keys.size() && i < kShown; ++i) text += " " + keys[i];
  if (keys.size() > kShown) text += " (+" + std::to_string(keys.size() - kShown) + " more)";
  return text + ";";
}

// What keeps `given` from fitting `targets` (missing, mis-shaped and unexpected keys), or "" when it fits.
std::string mismatch(const torch::OrderedDict<std::string, torch::Tensor>& targets,
                     const std::map<std::string, torch::Tensor>& given) {
  std::vector<std::string> missing, mismatched, unexpected;
  for (const auto& t : targets) {
    const auto it = given.find(t.key());
    if (it == given.end()) {
      missing.push_back(t.key());
    } else if (it->second.sizes() != t.value().sizes()) {
      mismatched.push_back(t.key() + " " + c10::str(it->second.sizes()) + " vs model " + c10::str(t.value().sizes()));
    }
  }
  for (const auto& entry : given) {
    if (!targets.contains(entry.first)) unexpected.push_back(entry.first);
  }
  return key_list("missing", missing) + key_list("shape mismatch", mismatched) + key_list("unexpected", unexpected);
}
}  // namespace

GenericDict read_torch_file(const std::string& path) {
  const std::string bytes = common::read_file(path);
  c10::IValue value;
  try {
    // torch::pickle_load would put each tensor where the file says it was saved: "cuda:0" for the reference's
    // GPU runs, which fails without a GPU and fills GPU 0 from every rank with one. Tensors land on the CPU
    // here; callers copy them where they belong.
    caffe2::serialize::PyTorchStreamReader reader(std::make_shared<BytesReader>(bytes));
    value = torch::jit::readArchiveAndTensors("data", /*pickle_prefix=*/"", /*tensor_prefix=*/"",
                                              /*type_resolver=*/std::nullopt, /*obj_loader=*/std::nullopt,
                                              torch::Device(torch::kCPU), reader);
  } catch (const std::exception& e) {
    const std::string reason = e.what();
    throw common::InputError(
        path + ": not a readable torch.save file (truncated or corrupt?): " + reason.substr(0, reason.find('\n')));
  }
  if (!value.isGenericDict()) throw common::InputError(path + ": expected a dictionary at the top level");
  return value.toGenericDict();
}

void write_torch_file(const std::string& path, const c10::IValue& value) {
  const std::vector<char> bytes = torch::pickle_save(value);
  common::write_file_atomic(path, bytes.data(), bytes.size());
}

GenericDict state_dict(torch::nn::Module& module, const std::string& prefix) {
  GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& p : module.named_parameters()) dict.insert(prefix + p.key(), p.value());
  for (const auto& b : module.named_buffers()) dict.insert(prefix + b.key(), b.value());
  return dict;
}

std::map<std::string, torch::Tensor> tensors_by_name(const GenericDict& dict, const std::string& what) {
  std::map<std::string, torch::Tensor> given;
  for (const auto& entry : dict) {
    if (!entry.key().isString() || !entry.value().isTensor()) {
      throw common::InputError(what + ": state dict entries must map names to tensors");
    }
    given[without_prefix(entry.key().toStringRef())] = entry.value().toTensor();
  }
  return given;
}

void load_state_dict(torch::nn::Module& module, const GenericDict& dict, const std::string& what) {
  const auto given = tensors_by_name(dict, what);
  auto targets = module.named_parameters();
  for (const auto& b : module.named_buffers()) targets.insert(b.key(), b.value());
  const std::string problems = mismatch(targets, given);
  if (!problems.empty()) throw common::InputError(what + ": state dict does not fit the model;" + problems);
  torch::NoGradGuard no_grad;
  for (auto& t : targets) t.value().copy_(given.at(t.key()));
}

std::string parameters_sha256(const torch::nn::Module& module) {
  common::Sha256 hash;
  for (const auto& p : module.named_parameters()) {
    const auto t = p.value().detach().to(torch::kCPU).contiguous();
    hash.update(t.data_ptr(), t.numel() * t.element_size());
  }
  return hash.hex_digest();
}

}  // namespace ijepa::model
