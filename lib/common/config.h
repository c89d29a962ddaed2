// The typed config tree of ijepa-train and its YAML loading.
//
// The sections data, logging, mask, meta and optimization keep the reference's keys and meanings, so a
// reference config runs unchanged; checkpoint, dist, coordinator, metrics and eval add what the reference
// lacks. Loading reports every problem at once (unknown keys, wrong types, impossible values), each
// prefixed with its key path, by throwing ConfigError. Nothing else in the project parses YAML. The config as
// written back (to_yaml, to_key_lines) never holds the coordinator token: see kRedactedToken.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace ijepa::common {

using Range = std::array<double, 2>;  // [min, max]

// meta.use_bfloat16: the reference's true or false, or auto: bf16 autocast where the device runs bf16 matrix
// products natively (CUDA; a CPU that ATen hands them to oneDNN on: AVX-512 or AMX), fp32 elsewhere. On a CPU
// without, ATen falls back to a scalar kernel, one to two orders of magnitude slower than fp32. The trainer
// resolves auto at start (model::choose_bf16) and runs, logs and saves the resolved value.
enum class Bf16Mode { kOff, kOn, kAuto };

struct DataConfig {
  int64_t batch_size = 64;  // per rank
  double color_jitter_strength = 0.0;
  Range crop_scale{0.3, 1.0};
  int64_t crop_size = 224;
  std::string image_folder;  // joined to root_path; the reference's ImageNet layout
  int64_t num_workers = 2;   // decoding threads
  bool pin_mem = true;
  std::string root_path;
  bool use_color_distortion = false;  // accepted for compatibility; the reference configs set them false
  bool use_gaussian_blur = false;
  bool use_horizontal_flip = false;
  bool copy_data = false;
  // Beyond the reference:
  std::string dataset = "imagefolder";  // imagefolder | idx | cifar10 | cifar100
  std::string split = "train";          // train | test (imagefolder: the subfolder name)
  int64_t prefetch_batches = 4;         // batches decoded ahead of the training step
};

struct LoggingConfig {
  std::string folder;
  std::string write_tag = "jepa";
  int64_t log_every = 10;  // console line every N steps (rank 0)
};

struct MaskConfig {
  bool allow_overlap = false;
  Range aspect_ratio{0.75, 1.5};
  Range enc_mask_scale{0.85, 1.0};
  int64_t min_keep = 10;
  int64_t num_enc_masks = 1;
  int64_t num_pred_masks = 4;
  int64_t patch_size = 16;
  Range pred_mask_scale{0.15, 0.2};
  // Beyond the reference: "reference" reproduces its sampler exactly (blocks never reach the last row and
  // column; the batch cut keeps the smallest indices); "corrected" fixes both (reference issue #60, PR #40).
  std::string mode = "reference";
};

struct MetaConfig {
  bool copy_data = false;
  bool load_checkpoint = false;
  std::string model_name = "vit_base";
  int64_t pred_depth = 6;
  int64_t pred_emb_dim = 384;
  std::string read_checkpoint;             // file name in the run folder, or a path; empty: the latest
  Bf16Mode use_bfloat16 = Bf16Mode::kOff;  // true | false | auto (beyond the reference)
  // Beyond the reference:
  int64_t seed = 0;             // the reference's fixed _GLOBAL_SEED
  std::string device = "auto";  // auto | cpu | cuda
  int64_t threads = 0;          // intra-op threads per rank; 0: the runtime's default
};

struct OptimizationConfig {
  Range ema{0.996, 1.0};
  int64_t epochs = 300;
  double final_lr = 1e-6;
  double final_weight_decay = 0.4;
  double ipe_scale = 1.0;
  double lr = 1e-3;
  double start_lr = 2e-4;
  double warmup = 40;  // epochs
  double weight_decay = 0.04;
  // Beyond the reference: stop after this many steps (schedules still span the epochs); 0: no limit.
  int64_t max_steps = 0;
};

struct CheckpointConfig {
  int64_t every_steps = 0;      // also checkpoint every N steps (0: only at epoch ends and at exit)
  int64_t keep_last = 2;        // rolling step checkpoints kept
  int64_t periodic_epochs = 0;  // keep a permanent copy every N epochs (0: none)
  // A fresh start (meta.load_checkpoint false) in a folder that holds checkpoints of this write_tag is refused
  // unless this is set; then they are removed first. Resuming ignores it.
  bool overwrite = false;
};

struct DistConfig {
  std::string backend = "auto";  // auto | single | mpi | nccl
  double bucket_mb = 25.0;
  double first_bucket_mb = 1.0;
  int64_t min_buckets = 8;  // a smaller model gets smaller buckets, so backward hides its all-reduces (1: plain caps)
  bool compress_bf16 = false;
  int64_t target_sync_every = 1000;  // re-broadcast the EMA target from rank 0 every N steps (0: never)
  int64_t check_every = 100;         // compare encoder checksums across ranks every N steps (0: never)
  // A collective, or MPI's start, pending longer than this ends the job. Rank 0 writes each checkpoint while the
  // others wait in the next collective: keep it above the slowest write.
  double timeout_s = 300.0;
};

// The bearer token comes from coordinator.token, else from the file coordinator.token_file (one trailing line
// break dropped), else from $IJEPA_COORDINATOR_TOKEN (read only when coordinator.address is set); giving both
// token and token_file is an error. Loading resolves it into `token`, which must be printable ASCII without spaces
// (common::check_token).
struct CoordinatorConfig {
  std::string address;  // host:port; empty: no coordinator
  std::string token;    // the resolved token; written out as kRedactedToken (see to_yaml)
  std::string token_file;
  std::string tls_ca;  // PEM files; empty: plaintext
  std::string tls_cert;
  std::string tls_key;
  std::string run_name;  // empty: derived from the run folder
  double heartbeat_s = 2.0;
  int64_t queue_capacity = 1024;
};

struct MetricsConfig {
  std::string listen;  // host:port for this rank's /metrics; empty: off. The port is offset by port_offset:
  // global_rank: port + rank (distinct over the job); local_rank: port + the rank's index on its node (the same
  // ports on every node or pod, as a Kubernetes PodMonitor needs); none: the port as given (one rank per host).
  std::string port_offset = "global_rank";
};

// Probes of the frozen target encoder: fitted on data.split of the training dataset, scored on its test split.
struct EvalConfig {
  int64_t every_epochs = 0;           // during pretraining, after every N-th epoch (0: off)
  bool at_end = false;                // once more when the run ends (completed or optimization.max_steps)
  bool baselines = false;             // at the end, also the encoder at its initialisation and raw pixels
  std::string protocol = "knn";       // linear | knn | both
  std::string pooling = "avg";        // avg | avg4 | grid (eval/features.h)
  int64_t max_train_samples = 10000;  // samples spread evenly over the split; 0: all of it
  int64_t max_test_samples = 2000;
};

struct Config {
  DataConfig data;
  LoggingConfig logging;
  MaskConfig mask;
  MetaConfig meta;
  OptimizationConfig optimization;
  CheckpointConfig checkpoint;
  DistConfig dist;
  CoordinatorConfig coordinator;
  MetricsConfig metrics;
  EvalConfig eval;
};

// Reads FILE, applies `section.key=value` overrides (values are YAML: numbers, strings, [a, b]), then
// validates. Throws ConfigError listing every problem, or InputError when the file cannot be read.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from YAML text (tests); `origin` names the source in messages.
Config parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides = {},
                    const std::string& origin = "<config>");

// What to_yaml and to_key_lines write for a non-empty coordinator.token. Their text goes to params-ijepa.yaml,
// checkpoints, logs and the coordinator's database, so the secret never does. Loading the placeholder back takes
// the token from coordinator.token_file or $IJEPA_COORDINATOR_TOKEN; without either, it is an error naming
// coordinator.token (when coordinator.address is set), rather than a run that quietly sends a wrong token.
inline constexpr const char* kRedactedToken = "<redacted>";

// The resolved config as YAML, every key present; loads back to the same Config (the token: kRedactedToken).
std::string to_yaml(const Config& config);

// The resolved config as one "section.key: value" line per key (values in YAML flow style), so that a
// line-by-line comparison of two configs names the key path that differs. The token is redacted as in to_yaml.
std::string to_key_lines(const Config& config);

// A config that an earlier run saved (a checkpoint's, params-ijepa.yaml), read as it is: not validated (its dataset
// may have moved, its token is redacted), unknown keys ignored, missing ones at their defaults. Throws ConfigError
// when the text is not a YAML mapping.
Config read_saved_config(const std::string& yaml_text);

// "section.key: old -> new" for each key whose value differs, in to_key_lines' order.
std::vector<std::string> changed_keys(const Config& before, const Config& after);

// Where the training images are: root_path joined with image_folder (either may be empty).
std::string dataset_path(const DataConfig& data);

// Semantic checks beyond types (impossible values, missing dataset); one message per problem.
std::vector<std::string> validate(const Config& config);

}  // namespace ijepa::common
