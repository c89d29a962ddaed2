#include "model/checkpoint_file.h"

#include <algorithm>
#include <iomanip>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "common/sha256.h"

namespace ijepa::model {

namespace {

using c10::IValue;

constexpr char kChecksumKey[] = "ijepa_sha256";

// A canonical walk of the content: tags, sizes and raw bytes, independent of how the file packs them.
void hash_value(common::Sha256& h, const IValue& v) {
  auto tag = [&](const std::string& t) { h.update(t); };
  if (v.isTensor()) {
    const auto t = v.toTensor().detach().to(torch::kCPU).contiguous();
    tag("T" + std::string(c10::toString(t.scalar_type())) + c10::str(t.sizes()));
    h.update(t.data_ptr(), t.numel() * t.element_size());
  } else if (v.isGenericDict()) {
    // The pickler writes dictionaries sorted by key, so the walk sorts too: the same content, the same hash.
    std::vector<std::pair<std::string, IValue>> entries;
    for (const auto& e : v.toGenericDict()) {
      if (e.key().isString() && e.key().toStringRef() == kChecksumKey) continue;
      const std::string key =
          e.key().isInt() ? c10::str(std::setw(20), std::setfill('0'), e.key().toInt()) : c10::str(e.key());
      entries.emplace_back(key, e.value());
    }
    std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    tag("D" + std::to_string(entries.size()));
    for (const auto& [key, value] : entries) {
      tag("K" + key);
      hash_value(h, value);
    }
  } else if (v.isList() || v.isTuple()) {
    const auto items = v.isList() ? v.toListRef().vec() : v.toTupleRef().elements().vec();
    tag("L" + std::to_string(items.size()));
    for (const auto& item : items) hash_value(h, item);
  } else if (v.isDouble()) {
    const double d = v.toDouble();
    tag("F");
    h.update(&d, sizeof d);
  } else {
    tag(v.tagKind() + ":" + c10::str(v));  // int, bool, string, None
  }
}

std::string content_sha256(const GenericDict& dict) {
  common::Sha256 h;
  hash_value(h, IValue(dict));
  return h.hex_digest();
}

}  // namespace

void seal_checkpoint(GenericDict& checkpoint) { checkpoint.insert_or_assign(kChecksumKey, content_sha256(checkpoint)); }

CheckpointFile read_checkpoint_file(const std::string& path) {
  CheckpointFile file{read_torch_file(path)};
  const GenericDict& d = file.content;
  if (d.contains(kChecksumKey)) {
    if (content_sha256(d) != d.at(kChecksumKey).toStringRef()) {
      throw common::InputError("checkpoint " + path + ": checksum mismatch, the file is corrupt");
    }
    file.verified = true;
  } else if (d.contains("ijepa")) {
    // Only reference-format files (no "ijepa" position) come without a checksum; ours always carry one.
    throw common::InputError("checkpoint " + path +
                             ": written by ijepa but its checksum is missing, the file is corrupt");
  }
  return file;
}

}  // namespace ijepa::model
