#include "eval/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <set>
#include <tuple>

#include "common/errors.h"
#include "common/files.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; so is this code");

namespace ijepa::eval {

namespace {

constexpr char kMetadataKey[] = "__metadata__";
constexpr size_t kHeaderAlign = 8;  // the reference writer pads the header with spaces to this

const std::vector<std::pair<torch::Dtype, std::string>>& dtype_names() {
  static const std::vector<std::pair<torch::Dtype, std::string>> kNames = {
      {torch::kFloat64, "F64"}, {torch::kFloat32, "F32"}, {torch::kFloat16, "F16"}, {torch::kBFloat16, "BF16"},
      {torch::kInt64, "I64"},   {torch::kInt32, "I32"},   {torch::kInt16, "I16"},   {torch::kInt8, "I8"},
      {torch::kUInt8, "U8"},    {torch::kBool, "BOOL"},
  };
  return kNames;
}

std::string dtype_name(torch::Dtype dtype, const std::string& tensor) {
  for (const auto& [d, name] : dtype_names()) {
    if (d == dtype) return name;
  }
  throw common::InputError("safetensors: tensor " + tensor + " has unsupported dtype " +
                           std::string(c10::toString(dtype)));
}

torch::Dtype dtype_of(const std::string& name, const std::string& where) {
  for (const auto& [d, n] : dtype_names()) {
    if (n == name) return d;
  }
  throw common::InputError(where + ": unsupported dtype '" + name + "'");
}

// One tensor's header entry, checked against the data section.
struct Entry {
  std::string name;
  torch::Dtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

// The bytes of a tensor of `shape`, refusing negative dimensions and shapes whose size or strides (the product
// of the dimensions with zeros counted as ones) would not fit in 63 bits.
uint64_t byte_size(const std::vector<int64_t>& shape, torch::Dtype dtype, const std::string& where) {
  int64_t extent = static_cast<int64_t>(c10::elementSize(dtype));
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) throw common::InputError(where + ": negative dimension");
    empty = empty || d == 0;
    if (__builtin_mul_overflow(extent, std::max<int64_t>(d, 1), &extent)) {
      throw common::InputError(where + ": shape " + c10::str(c10::IntArrayRef(shape)) + " is too large");
    }
  }
  return empty ? 0 : static_cast<uint64_t>(extent);
}

Entry parse_entry(const std::string& name, const nlohmann::json& info, uint64_t data_size, const std::string& path) {
  const std::string where = path + ": tensor " + name;
  if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets")) {
    throw common::InputError(where + ": header entry needs dtype, shape and data_offsets");
  }
  Entry e;
  e.name = name;
  try {
    e.dtype = dtype_of(info.at("dtype").get<std::string>(), where);
    e.shape = info.at("shape").get<std::vector<int64_t>>();
    const auto offsets = info.at("data_offsets").get<std::vector<uint64_t>>();
    if (offsets.size() != 2) throw common::InputError(where + ": data_offsets must be [begin, end]");
    e.begin = offsets[0];
    e.end = offsets[1];
  } catch (const nlohmann::json::exception& ex) {
    throw common::InputError(where + ": malformed header entry: " + ex.what());
  }
  const uint64_t bytes = byte_size(e.shape, e.dtype, where);
  if (e.end < e.begin || e.end - e.begin != bytes || e.end > data_size) {
    throw common::InputError(where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                             "] do not match its shape or lie outside the file (truncated?)");
  }
  return e;
}

}  // namespace

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::vector<torch::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == kMetadataKey || header.contains(name)) {
      throw common::InputError("safetensors " + path + ": duplicate or reserved tensor name " + name);
    }
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", dtype_name(t.scalar_type(), name)},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(std::move(t));
  }
  std::string text = header.dump();
  text.append((kHeaderAlign - (8 + text.size()) % kHeaderAlign) % kHeaderAlign, ' ');

  std::string out(8, '\0');
  const uint64_t header_size = text.size();
  std::memcpy(out.data(), &header_size, 8);
  out += text;
  out.reserve(out.size() + offset);
  for (const auto& t : contiguous) {
    if (t.numel() > 0) out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  }
  common::write_file_atomic(path, out);
}

SafetensorsFile read_safetensors(const std::string& path) {
  const std::string bytes = common::read_file(path);
  uint64_t header_size = 0;
  if (bytes.size() < 8) throw common::InputError(path + ": too short for a safetensors file");
  std::memcpy(&header_size, bytes.data(), 8);
  if (header_size > bytes.size() - 8) throw common::InputError(path + ": header length beyond the end of the file");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_size));
  } catch (const nlohmann::json::exception& e) {
    throw common::InputError(path + ": safetensors header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw common::InputError(path + ": safetensors header must be a JSON object");

  SafetensorsFile file;
  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = bytes.size() - data_start;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == kMetadataKey) {
      try {
        file.metadata = info.get<std::map<std::string, std::string>>();
      } catch (const nlohmann::json::exception&) {
        throw common::InputError(path + ": __metadata__ must map strings to strings");
      }
      continue;
    }
    entries.push_back(parse_entry(name, info, data_size, path));
  }
  // An empty tensor may share its offset with the next one: it goes first.
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t expected = 0;
  for (const auto& e : entries) {
    if (e.begin != expected) throw common::InputError(path + ": tensor " + e.name + " overlaps or leaves a gap");
    expected = e.end;
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype));
    if (e.end > e.begin) std::memcpy(t.data_ptr(), bytes.data() + data_start + e.begin, e.end - e.begin);
    file.tensors.emplace_back(e.name, std::move(t));
  }
  if (expected != data_size) throw common::InputError(path + ": data section has trailing bytes");
  return file;
}

}  // namespace ijepa::eval
