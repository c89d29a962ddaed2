#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <utility>

#include "common/checks.h"
#include "common/errors.h"
#include "common/files.h"

namespace ijepa::common {

// One list of keys per section, shared by the reader, the writer and the unknown-key check.
template <class V>
void visit(V& v, DataConfig& c) {
  v("batch_size", c.batch_size);
  v("color_jitter_strength", c.color_jitter_strength);
  v("crop_scale", c.crop_scale);
  v("crop_size", c.crop_size);
  v("image_folder", c.image_folder);
  v("num_workers", c.num_workers);
  v("pin_mem", c.pin_mem);
  v("root_path", c.root_path);
  v("use_color_distortion", c.use_color_distortion);
  v("use_gaussian_blur", c.use_gaussian_blur);
  v("use_horizontal_flip", c.use_horizontal_flip);
  v("copy_data", c.copy_data);
  v("dataset", c.dataset);
  v("split", c.split);
  v("prefetch_batches", c.prefetch_batches);
}

template <class V>
void visit(V& v, LoggingConfig& c) {
  v("folder", c.folder);
  v("write_tag", c.write_tag);
  v("log_every", c.log_every);
}

template <class V>
void visit(V& v, MaskConfig& c) {
  v("allow_overlap", c.allow_overlap);
  v("aspect_ratio", c.aspect_ratio);
  v("enc_mask_scale", c.enc_mask_scale);
  v("min_keep", c.min_keep);
  v("num_enc_masks", c.num_enc_masks);
  v("num_pred_masks", c.num_pred_masks);
  v("patch_size", c.patch_size);
  v("pred_mask_scale", c.pred_mask_scale);
  v("mode", c.mode);
}

template <class V>
void visit(V& v, MetaConfig& c) {
  v("copy_data", c.copy_data);
  v("load_checkpoint", c.load_checkpoint);
  v("model_name", c.model_name);
  v("pred_depth", c.pred_depth);
  v("pred_emb_dim", c.pred_emb_dim);
  v("read_checkpoint", c.read_checkpoint);
  v("use_bfloat16", c.use_bfloat16);
  v("seed", c.seed);
  v("device", c.device);
  v("threads", c.threads);
}

template <class V>
void visit(V& v, OptimizationConfig& c) {
  v("ema", c.ema);
  v("epochs", c.epochs);
  v("final_lr", c.final_lr);
  v("final_weight_decay", c.final_weight_decay);
  v("ipe_scale", c.ipe_scale);
  v("lr", c.lr);
  v("start_lr", c.start_lr);
  v("warmup", c.warmup);
  v("weight_decay", c.weight_decay);
  v("max_steps", c.max_steps);
}

template <class V>
void visit(V& v, CheckpointConfig& c) {
  v("every_steps", c.every_steps);
  v("keep_last", c.keep_last);
  v("periodic_epochs", c.periodic_epochs);
  v("overwrite", c.overwrite);
}

template <class V>
void visit(V& v, DistConfig& c) {
  v("backend", c.backend);
  v("bucket_mb", c.bucket_mb);
  v("first_bucket_mb", c.first_bucket_mb);
  v("min_buckets", c.min_buckets);
  v("compress_bf16", c.compress_bf16);
  v("target_sync_every", c.target_sync_every);
  v("check_every", c.check_every);
  v("timeout_s", c.timeout_s);
}

template <class V>
void visit(V& v, CoordinatorConfig& c) {
  v("address", c.address);
  v("token", c.token);
  v("token_file", c.token_file);
  v("tls_ca", c.tls_ca);
  v("tls_cert", c.tls_cert);
  v("tls_key", c.tls_key);
  v("run_name", c.run_name);
  v("heartbeat_s", c.heartbeat_s);
  v("queue_capacity", c.queue_capacity);
}

template <class V>
void visit(V& v, MetricsConfig& c) {
  v("listen", c.listen);
  v("port_offset", c.port_offset);
}

template <class V>
void visit(V& v, EvalConfig& c) {
  v("every_epochs", c.every_epochs);
  v("at_end", c.at_end);
  v("baselines", c.baselines);
  v("protocol", c.protocol);
  v("pooling", c.pooling);
  v("max_train_samples", c.max_train_samples);
  v("max_test_samples", c.max_test_samples);
}

template <class V>
void visit_sections(V& v, Config& c) {
  v.section("data", c.data);
  v.section("logging", c.logging);
  v.section("mask", c.mask);
  v.section("meta", c.meta);
  v.section("optimization", c.optimization);
  v.section("checkpoint", c.checkpoint);
  v.section("dist", c.dist);
  v.section("coordinator", c.coordinator);
  v.section("metrics", c.metrics);
  v.section("eval", c.eval);
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string did_you_mean(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = 3;  // suggest only close matches
  for (const auto& k : known) {
    size_t d = edit_distance(key, k);
    if (d < best_distance) best_distance = d, best = k;
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

std::string describe(const YAML::Node& node) {
  if (node.IsNull()) return "null";
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  return node.IsSequence() ? "a list" : "a mapping";
}

YAML::Emitter& operator<<(YAML::Emitter& out, Bf16Mode mode) {
  if (mode == Bf16Mode::kAuto) return out << "auto";
  return out << (mode == Bf16Mode::kOn);
}

// Reads a YAML tree into the typed config, collecting every error.
class YamlReader {
 public:
  YamlReader(const YAML::Node& root, std::vector<std::string>& errors) : root_(root), errors_(errors) {}

  template <class Section>
  void section(const char* name, Section& s) {
    sections_.emplace_back(name);
    const YAML::Node node = root_[name];
    if (!node || node.IsNull()) return;
    if (!node.IsMap()) {
      errors_.push_back(std::string(name) + ": expected a mapping of keys, got " + describe(node));
      return;
    }
    section_ = name;
    node_ = node;
    keys_.clear();
    visit(*this, s);
    for (const std::string& key : names_in(node, section_ + ": a key", section_ + ".")) {
      if (std::find(keys_.begin(), keys_.end(), key) == keys_.end()) {
        errors_.push_back(section_ + "." + key + ": unknown key" + did_you_mean(key, keys_));
      }
    }
  }

  void check_unknown_sections() {
    if (!root_.IsMap()) return;
    for (const std::string& name : names_in(root_, "a section name", "")) {
      if (std::find(sections_.begin(), sections_.end(), name) == sections_.end()) {
        errors_.push_back(name + ": unknown section" + did_you_mean(name, sections_));
      }
    }
  }

  template <class T>
  void operator()(const char* key, T& value) {
    keys_.emplace_back(key);
    const YAML::Node node = node_[key];
    if (!node) return;
    read(section_ + "." + key, node, value);
  }

 private:
  // The keys of `map`, each once. A key that is not a name, or one given twice, is an error: yaml-cpp reads the
  // first of two equal keys and PyYAML (the reference) the last, so either choice would silently differ.
  std::vector<std::string> names_in(const YAML::Node& map, const std::string& what, const std::string& prefix) {
    std::vector<std::string> names;
    for (const auto& kv : map) {
      if (!kv.first.IsScalar()) {
        errors_.push_back(what + " must be a name, got " + describe(kv.first));
        continue;
      }
      const std::string name = kv.first.Scalar();
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        errors_.push_back(prefix + name + ": given more than once");
        continue;
      }
      names.push_back(name);
    }
    return names;
  }

  void read(const std::string& path, const YAML::Node& node, bool& value) {
    decode(path, node, value, "true or false");
  }
  void read(const std::string& path, const YAML::Node& node, Bf16Mode& value) {
    bool on = false;
    if (node.IsScalar() && node.Scalar() == "auto") {
      value = Bf16Mode::kAuto;
    } else if (node.IsScalar() && YAML::convert<bool>::decode(node, on)) {
      value = on ? Bf16Mode::kOn : Bf16Mode::kOff;
    } else {
      errors_.push_back(path + ": expected true, false or auto, got " + describe(node));
    }
  }
  void read(const std::string& path, const YAML::Node& node, int64_t& value) {
    decode(path, node, value, "an integer");
  }
  void read(const std::string& path, const YAML::Node& node, double& value) {
    double decoded = value;
    decode(path, node, decoded, "a number");
    if (finite(path, decoded)) value = decoded;
  }
  // Decodes into a temporary so that a failed key keeps its default (no follow-on errors).
  template <class T>
  void decode(const std::string& path, const YAML::Node& node, T& value, const char* expected) {
    T decoded{};
    if (node.IsScalar() && YAML::convert<T>::decode(node, decoded)) {
      value = decoded;
    } else {
      errors_.push_back(path + ": expected " + std::string(expected) + ", got " + describe(node));
    }
  }
  void read(const std::string& path, const YAML::Node& node, std::string& value) {
    if (node.IsNull()) {
      value.clear();
    } else if (node.IsScalar()) {
      value = node.Scalar();
    } else {
      errors_.push_back(path + ": expected a string, got " + describe(node));
    }
  }
  void read(const std::string& path, const YAML::Node& node, Range& value) {
    Range decoded{};
    if (node.IsSequence() && node.size() == 2 && YAML::convert<double>::decode(node[0], decoded[0]) &&
        YAML::convert<double>::decode(node[1], decoded[1])) {
      if (finite(path, decoded[0]) && finite(path, decoded[1])) value = decoded;
    } else {
      errors_.push_back(path + ": expected a list of two numbers [min, max], got " + describe(node));
    }
  }
  // YAML's .inf passes every check written as a comparison (lr > 0 holds for it) and no key means anything by it
  // or by .nan: both are errors here, once for all keys.
  bool finite(const std::string& path, double value) {
    if (std::isfinite(value)) return true;
    errors_.push_back(path + ": must be a finite number, got " + std::to_string(value));
    return false;
  }

  const YAML::Node& root_;
  std::vector<std::string>& errors_;
  std::vector<std::string> sections_;
  std::string section_;
  YAML::Node node_;
  std::vector<std::string> keys_;
};

class YamlWriter {
 public:
  template <class Section>
  void section(const char* name, Section& s) {
    out_ << YAML::Key << name << YAML::Value << YAML::BeginMap;
    visit(*this, s);
    out_ << YAML::EndMap;
  }
  void operator()(const char* key, const Range& value) {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq << value[0] << value[1] << YAML::EndSeq;
  }
  template <class T>
  void operator()(const char* key, const T& value) {
    out_ << YAML::Key << key << YAML::Value << value;
  }
  YAML::Emitter& emitter() { return out_; }

 private:
  YAML::Emitter out_;
};

class KeyLineWriter {
 public:
  template <class Section>
  void section(const char* name, Section& s) {
    section_ = name;
    visit(*this, s);
  }
  void operator()(const char* key, const Range& value) {
    YAML::Emitter out;
    out << YAML::Flow << YAML::BeginSeq << value[0] << value[1] << YAML::EndSeq;
    line(key, out.c_str());
  }
  template <class T>
  void operator()(const char* key, const T& value) {
    YAML::Emitter out;
    out << YAML::Flow << value;
    line(key, out.c_str());
  }
  const std::string& text() const { return text_; }

 private:
  void line(const char* key, const char* value) { text_ += section_ + "." + key + ": " + value + "\n"; }

  std::string section_;
  std::string text_;
};

void apply_override(YAML::Node& root, const std::string& text, std::vector<std::string>& errors) {
  const auto eq = text.find('=');
  const auto dot = text.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot > eq || dot == 0 || dot + 1 == eq) {
    errors.push_back("--set " + text + ": expected section.key=value");
    return;
  }
  const std::string section = text.substr(0, dot);
  const std::string key = text.substr(dot + 1, eq - dot - 1);
  if (const YAML::Node existing = root[section]; existing && !existing.IsNull() && !existing.IsMap()) {
    errors.push_back("--set " + text + ": section " + section + " in the config is " + describe(existing) +
                     ", not a mapping of keys");
    return;
  }
  try {
    root[section][key] = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    errors.push_back("--set " + text + ": the value is not valid YAML (" + e.msg + ")");
  }
}

// The token in coordinator.token_file, without the line break that editors and `echo` leave at the end.
void read_token_file(CoordinatorConfig& c, std::vector<std::string>& errors) {
  const std::string key = "coordinator.token_file: '" + c.token_file + "'";
  std::string text;
  try {
    text = read_file(c.token_file);
  } catch (const InputError&) {
    errors.push_back(key + " cannot be read");
    return;
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty()) {
    errors.push_back(key + " is empty");
  } else if (const std::string problem = token_problem(text); !problem.empty()) {
    errors.push_back(key + ": the token " + problem);
  } else {
    c.token = text;
  }
}

// Fills coordinator.token from token_file or the environment when the YAML gives none (see CoordinatorConfig).
void resolve_token(CoordinatorConfig& c, std::vector<std::string>& errors) {
  if (!c.token.empty() && c.token != kRedactedToken) {
    if (!c.token_file.empty())
      errors.push_back("coordinator.token/token_file: give the token in one of them, not both");
    return;
  }
  const char* variable = std::getenv("IJEPA_COORDINATOR_TOKEN");
  if (!c.token_file.empty()) {
    c.token.clear();  // a failed read is one error, not also the placeholder's
    read_token_file(c, errors);
  } else if (!c.address.empty() && variable != nullptr && *variable != '\0') {
    c.token.clear();
    if (const std::string problem = token_problem(variable); !problem.empty()) {
      errors.push_back("$IJEPA_COORDINATOR_TOKEN (for coordinator.token): " + problem);
    } else {
      c.token = variable;
    }
  }
}

// A copy safe to write out: the token replaced by kRedactedToken.
Config redacted(const Config& config) {
  Config copy = config;
  if (!copy.coordinator.token.empty()) copy.coordinator.token = kRedactedToken;
  return copy;
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                    const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError({origin + ": not valid YAML: " + e.what()});
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) throw ConfigError({origin + ": expected a mapping of sections at the top level"});

  std::vector<std::string> errors;
  for (const auto& o : overrides) apply_override(root, o, errors);
  Config config;
  YamlReader reader(root, errors);
  visit_sections(reader, config);
  reader.check_unknown_sections();
  resolve_token(config.coordinator, errors);
  for (auto& e : validate(config)) errors.push_back(std::move(e));
  if (!errors.empty()) throw ConfigError(std::move(errors));
  return config;
}

Config read_saved_config(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError({std::string("saved config: not valid YAML: ") + e.what()});
  }
  if (!root.IsMap()) throw ConfigError({"saved config: expected a mapping of sections at the top level"});
  std::vector<std::string> ignored;  // keys of another version, values that no longer validate
  Config config;
  YamlReader reader(root, ignored);
  visit_sections(reader, config);
  return config;
}

std::vector<std::string> changed_keys(const Config& before, const Config& after) {
  const auto lines = [](const Config& c) {
    std::vector<std::string> out;
    std::istringstream in(to_key_lines(c));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  };
  const auto a = lines(before), b = lines(after);
  std::vector<std::string> changed;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {  // the same keys in the same order
    if (a[i] == b[i]) continue;
    const size_t colon = a[i].find(": ");
    changed.push_back(a[i] + " -> " + b[i].substr(colon == std::string::npos ? 0 : colon + 2));
  }
  return changed;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::string text;
  try {
    text = read_file(path);  // a folder fails here, where an ifstream reads it as an empty config
  } catch (const InputError& e) {
    throw InputError(std::string("config file ") + e.what());
  }
  return parse_config(text, overrides, path);
}

std::string to_yaml(const Config& config) {
  YamlWriter writer;
  Config copy = redacted(config);
  writer.emitter() << YAML::BeginMap;
  visit_sections(writer, copy);
  writer.emitter() << YAML::EndMap;
  return std::string(writer.emitter().c_str()) + "\n";
}

std::string to_key_lines(const Config& config) {
  KeyLineWriter writer;
  Config copy = redacted(config);
  visit_sections(writer, copy);
  return writer.text();
}

}  // namespace ijepa::common
