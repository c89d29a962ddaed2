// Training checkpoints: everything an exact resume needs, in the reference's file format.
//
// A checkpoint is a torch.save dictionary with the reference's keys (encoder, predictor, target_encoder with
// "module." prefixes, opt, scaler, epoch, loss, batch_size, world_size, lr), so the reference code and Python's
// torch.load read it, plus "ijepa" (the position inside an epoch, the mask sampler's generator, the resolved
// config) and "ijepa_sha256", a SHA-256 over all the other content that load verifies (model/checkpoint_file.h,
// shared with ijepa-eval). Files are written atomically; the store keeps the latest K step checkpoints,
// "{tag}-latest.pth.tar" (a link to the newest) and, if asked, a permanent "{tag}-ep{E}.pth.tar" every N epochs
// (E = epochs completed).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "train/optimizer.h"
#include "train/step.h"

namespace ijepa::train {

// Where training stands after `step` completed steps.
struct TrainingPosition {
  int64_t step = 0;                    // completed steps
  int64_t epoch = 0;                   // epoch of the next batch (0-based)
  int64_t batch_in_epoch = 0;          // index of the next batch in that epoch
  int64_t mask_counter = -1;           // mask sampler's batch counter
  torch::Tensor mask_generator_state;  // undefined when unknown (reference checkpoints)
  double last_loss = 0;
};

struct CheckpointInfo {
  int64_t batch_size = 0;  // per rank
  int64_t world_size = 1;
  double lr = 0;            // of the last step, as the reference stores it
  double weight_decay = 0;  // of the last step (the decayed groups' value in "opt")
  std::string config_yaml;
};

struct LoadedCheckpoint {
  TrainingPosition position;
  CheckpointInfo info;
  bool verified = false;  // false for a reference checkpoint, which carries no checksum
};

// The checkpoint as a dictionary (checksum included).
c10::impl::GenericDict checkpoint_dict(JepaModels& models, AdamW& optimizer, const TrainingPosition& position,
                                       const CheckpointInfo& info);

// Reads `path` into the models and optimizer. Throws InputError naming the file when it is missing, corrupt
// (checksum mismatch), truncated, or does not fit the models. A reference checkpoint (no "ijepa" entry) resumes
// at the start of its epoch, as the reference does: step = epoch * iterations_per_epoch.
LoadedCheckpoint load_checkpoint(const std::string& path, JepaModels& models, AdamW* optimizer,
                                 int64_t iterations_per_epoch);

class CheckpointStore {
 public:
  CheckpointStore(std::string folder, std::string tag, int64_t keep_last, int64_t periodic_epochs);

  // Writes the checkpoint of `position`, points latest at it, keeps a periodic copy when `epochs_done` is a
  // multiple of periodic_epochs, and removes step checkpoints beyond the newest keep_last up to its step. Returns its
  // path.
  std::string save(JepaModels& models, AdamW& optimizer, const TrainingPosition& position, const CheckpointInfo& info,
                   int64_t epochs_done, bool epoch_end);

  std::string latest_path() const;
  // The checkpoints of this tag in the folder (latest, rolling and periodic), by name; none if there is no folder.
  std::vector<std::filesystem::path> existing() const;
  // meta.read_checkpoint: empty -> latest; a bare name -> inside the folder; otherwise the path as given.
  std::string resolve(const std::string& read_checkpoint) const;

 private:
  void remove_old_steps(int64_t step) const;

  std::string folder_, tag_;
  int64_t keep_last_, periodic_epochs_;
};

}  // namespace ijepa::train
