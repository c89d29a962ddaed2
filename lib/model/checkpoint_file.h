// The checksum that ijepa's checkpoints carry, shared by every reader of them (resume, ijepa-eval).
//
// "ijepa_sha256" is a SHA-256 over a canonical walk of all the other content of the torch.save dictionary, so
// a flipped byte in a tensor is caught even though the file still unpickles. Reference checkpoints (no "ijepa"
// entry) carry none and load unverified; an ijepa checkpoint without it is corrupt.
#pragma once

#include <string>

#include "model/state_dict.h"

namespace ijepa::model {

struct CheckpointFile {
  GenericDict content;
  bool verified = false;  // false for a reference checkpoint
};

// Adds (or replaces) the checksum of everything else in `checkpoint`.
void seal_checkpoint(GenericDict& checkpoint);

// read_torch_file, then the checksum verified. InputError naming the file when it does not match, or when an
// ijepa checkpoint has none.
CheckpointFile read_checkpoint_file(const std::string& path);

}  // namespace ijepa::model
