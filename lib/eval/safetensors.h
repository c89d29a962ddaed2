// The safetensors format (huggingface/safetensors), written and read by hand: an 8-byte little-endian header
// length, a JSON header mapping each tensor name to {dtype, shape, data_offsets} (plus "__metadata__", a
// string-to-string map), then the raw little-endian tensor bytes, packed without gaps.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ijepa::eval {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

struct SafetensorsFile {
  NamedTensors tensors;  // in file order (by data offset), on the CPU
  std::map<std::string, std::string> metadata;
};

// Writes `tensors` (any device; F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL) in the given order,
// atomically. Throws InputError for an unsupported dtype or a duplicate name.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata);

// Reads a whole file. Throws InputError naming the file when it is missing, truncated, has a malformed
// header, an unknown dtype, or offsets that overlap, leave gaps or disagree with the shapes.
SafetensorsFile read_safetensors(const std::string& path);

}  // namespace ijepa::eval
