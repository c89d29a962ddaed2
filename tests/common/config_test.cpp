// Config loading: the reference's configs validate, errors name their key paths and come all together.
#include "common/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <regex>
#include <utility>

#include "common/errors.h"
#include "test_util.h"

namespace ijepa::common {
namespace {

using ijepa::testing::read_file;
using ijepa::testing::shared_path;
using ijepa::testing::TempDir;
using ijepa::testing::write_file;

std::vector<std::string> errors_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, overrides);
  } catch (const ConfigError& e) {
    return e.errors();
  }
  return {};
}

bool has_error(const std::vector<std::string>& errors, const std::string& prefix) {
  return std::any_of(errors.begin(), errors.end(), [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
}

// Sets $IJEPA_COORDINATOR_TOKEN for one scope, then restores what was there.
class ScopedTokenVariable {
 public:
  explicit ScopedTokenVariable(const std::string& value) {
    if (const char* old = std::getenv(kName)) old_ = old;
    ::setenv(kName, value.c_str(), 1);
  }
  ~ScopedTokenVariable() {
    if (old_) {
      ::setenv(kName, old_->c_str(), 1);
    } else {
      ::unsetenv(kName);
    }
  }
  ScopedTokenVariable(const ScopedTokenVariable&) = delete;
  ScopedTokenVariable& operator=(const ScopedTokenVariable&) = delete;

 private:
  static constexpr const char* kName = "IJEPA_COORDINATOR_TOKEN";
  std::optional<std::string> old_;
};

class ConfigTest : public ::testing::Test {
 protected:
  ConfigTest() { ::unsetenv("IJEPA_COORDINATOR_TOKEN"); }  // a token from the caller's shell must not leak in

  std::string minimal() const {
    return "data: {root_path: " + dir_.path().string() + ", crop_size: 28}\nmask: {patch_size: 4, min_keep: 4}\n" +
           "logging: {folder: " + (dir_ / "run") + "}\n";
  }
  TempDir dir_;
};

TEST_F(ConfigTest, ReleasedConfigsValidateOnceTheirPlaceholderPathsAreReplaced) {
  for (const char* name : {"in1k_vith14_ep300", "in1k_vith16-448_ep300", "in22k_vith14_ep66", "in22k_vitg16_ep44"}) {
    std::string text = read_file(shared_path(std::string("reference/configs/") + name + ".yaml"));
    ASSERT_FALSE(text.empty()) << name;
    text = std::regex_replace(text, std::regex(R"(\$replace_this_with_absolute_path_to_your_datasets_directory)"),
                              dir_.path().string());
    text = std::regex_replace(text, std::regex(R"(\$replace_this_with_path_for_experiment_logs)"), dir_ / "logs");
    std::filesystem::create_directories(dir_.path() / "imagenet_full_size/061417");
    Config c;
    ASSERT_NO_THROW(c = parse_config(text, {}, name)) << name;
    EXPECT_EQ(c.meta.use_bfloat16, Bf16Mode::kOn);
    EXPECT_EQ(c.mask.num_pred_masks, 4);
    EXPECT_EQ(c.optimization.ema[0], 0.996);
  }
}

TEST_F(ConfigTest, PlaceholderPathsAreNamed) {
  const std::string text = read_file(shared_path("reference/configs/in1k_vith14_ep300.yaml"));
  const auto errors = errors_of(text);
  EXPECT_TRUE(has_error(errors, "data.root_path: still the placeholder"));
  EXPECT_TRUE(has_error(errors, "logging.folder: still the placeholder"));
}

TEST_F(ConfigTest, TheReferenceValuesKeepTheirMeaning) {
  const Config c =
      parse_config(minimal() + "optimization: {lr: 0.002, warmup: 1, epochs: 3}\nmeta: {read_checkpoint: null}\n");
  EXPECT_DOUBLE_EQ(c.optimization.lr, 0.002);
  EXPECT_EQ(c.optimization.epochs, 3);
  EXPECT_EQ(c.data.crop_size, 28);
  EXPECT_TRUE(c.meta.read_checkpoint.empty());
  EXPECT_EQ(c.mask.mode, "reference");
}

TEST_F(ConfigTest, OverridesReplaceAnyKey) {
  const Config c =
      parse_config(minimal(), {"optimization.lr=0.5", "mask.aspect_ratio=[0.5, 2.0]", "meta.model_name=vit_small"});
  EXPECT_DOUBLE_EQ(c.optimization.lr, 0.5);
  EXPECT_DOUBLE_EQ(c.mask.aspect_ratio[1], 2.0);
  EXPECT_EQ(c.meta.model_name, "vit_small");
}

TEST_F(ConfigTest, EveryErrorIsReportedTogetherWithItsKeyPath) {
  const auto errors = errors_of(minimal() +
                                    "optimization: {lr: fast, epochs: 1.5}\nmeta: {bogus: 1, use_bfloat16: maybe}\n"
                                    "extra: {}\n",
                                {"data.batch_sise=3", "nodot=1"});
  EXPECT_TRUE(has_error(errors, "optimization.lr: expected a number, got 'fast'"));
  EXPECT_TRUE(has_error(errors, "optimization.epochs: expected an integer"));
  EXPECT_TRUE(has_error(errors, "meta.bogus: unknown key"));
  EXPECT_TRUE(has_error(errors, "meta.use_bfloat16: expected true, false or auto, got 'maybe'"));
  EXPECT_TRUE(has_error(errors, "data.batch_sise: unknown key (did you mean 'batch_size'?)"));
  EXPECT_TRUE(has_error(errors, "extra: unknown section"));
  EXPECT_TRUE(has_error(errors, "--set nodot=1"));
  EXPECT_EQ(errors.size(), 7u) << ::testing::PrintToString(errors);
}

TEST_F(ConfigTest, KeysThatAreNotNamesAndOverridesIntoAScalarSectionAreNamed) {
  const auto errors = errors_of(minimal() + "meta: {[1, 2]: x}\n? [a]\n: 1\n", {"eval.every_epochs=1"});
  EXPECT_TRUE(has_error(errors, "meta: a key must be a name, got a list")) << ::testing::PrintToString(errors);
  EXPECT_TRUE(has_error(errors, "a section name must be a name, got a list")) << ::testing::PrintToString(errors);
  const auto scalar = errors_of(minimal() + "eval: 3\n", {"eval.every_epochs=1"});
  EXPECT_TRUE(has_error(scalar, "--set eval.every_epochs=1: section eval in the config is '3', not a mapping"))
      << ::testing::PrintToString(scalar);
}

TEST_F(ConfigTest, AKeyOrSectionGivenTwiceIsAnErrorNotTheFirstOrTheLastSilently) {
  // yaml-cpp reads the first of two equal keys, PyYAML (the reference) the last.
  const auto errors = errors_of(
      minimal() + "optimization: {lr: 0.1, epochs: 2, warmup: 1, lr: 0.2}\nmeta: {seed: 1}\n" + "meta: {seed: 2}\n");
  EXPECT_TRUE(has_error(errors, "optimization.lr: given more than once")) << ::testing::PrintToString(errors);
  EXPECT_TRUE(has_error(errors, "meta: given more than once")) << ::testing::PrintToString(errors);
  EXPECT_EQ(errors.size(), 2u) << ::testing::PrintToString(errors);
}

TEST_F(ConfigTest, InfinityAndNanAreNotNumbersAnyKeyTakes) {
  const auto errors = errors_of(minimal() + "optimization: {lr: .inf, weight_decay: .nan, ema: [0.996, .inf]}\n",
                                {"dist.timeout_s=.inf"});
  for (const char* key : {"optimization.lr: must be a finite number, got inf",
                          "optimization.weight_decay: must be a finite number, got nan",
                          "optimization.ema: must be a finite number, got inf", "dist.timeout_s: must be a finite"}) {
    EXPECT_TRUE(has_error(errors, key)) << key << ": " << ::testing::PrintToString(errors);
  }
  EXPECT_EQ(errors.size(), 4u) << ::testing::PrintToString(errors);
}

TEST_F(ConfigTest, ImpossibleValuesAreRejected) {
  EXPECT_TRUE(
      has_error(errors_of(minimal(), {"data.crop_size=30"}), "mask.patch_size: data.crop_size 30 is not divisible"));
  EXPECT_TRUE(has_error(errors_of(minimal(), {"mask.min_keep=49"}), "mask.min_keep: 49 is not smaller than the 7x7"));
  EXPECT_TRUE(
      has_error(errors_of(minimal(), {"data.root_path=/nonexistent/ijepa"}), "data.root_path/image_folder: dataset"));
  ijepa::testing::write_file(dir_ / "a-file", "x");
  EXPECT_TRUE(has_error(errors_of(minimal(), {"data.root_path=" + (dir_ / "a-file")}),
                        "data.root_path/image_folder: dataset '" + (dir_ / "a-file") + "' is a file, not a folder"));
  EXPECT_TRUE(has_error(errors_of(minimal(), {"data.batch_size=0"}), "data.batch_size: must be positive"));
  EXPECT_TRUE(has_error(errors_of(minimal(), {"dist.min_buckets=0"}), "dist.min_buckets: must be positive"));
  EXPECT_TRUE(has_error(errors_of(minimal(), {"mask.pred_mask_scale=[0.3, 0.2]"}), "mask.pred_mask_scale"));
  // Target blocks of 2x2 patches on the 7x7 grid never hold more than min_keep 4: the reference would hang.
  const auto small_blocks = errors_of(minimal(), {"mask.pred_mask_scale=[0.1, 0.15]", "data.batch_size=0"});
  EXPECT_TRUE(has_error(small_blocks, "mask.pred_mask_scale: some draws give a 2x2 block of 7x7 patches"));
  EXPECT_TRUE(has_error(small_blocks, "data.batch_size: must be positive")) << "reported together";
  EXPECT_FALSE(has_error(errors_of(minimal(), {"mask.pred_mask_scale=[0.15, 0.2]"}), "mask.pred_mask_scale"));
  EXPECT_TRUE(has_error(errors_of(minimal(), {"meta.model_name=vit_enormous"}),
                        "meta.model_name: 'vit_enormous' is not one of"));
  EXPECT_TRUE(has_error(errors_of(minimal(), {"data.use_horizontal_flip=true"}), "data.use_color_distortion"));
  // vit_base has 12 heads: the predictor width must split into them and into 4 (its 2D sin-cos table).
  EXPECT_TRUE(has_error(errors_of(minimal(), {"meta.pred_emb_dim=100"}),
                        "meta.pred_emb_dim: 100 must be divisible by 4 and by vit_base's 12 heads"));
  EXPECT_TRUE(has_error(errors_of(minimal(), {"meta.pred_emb_dim=90"}), "meta.pred_emb_dim: 90"));
  EXPECT_FALSE(has_error(errors_of(minimal(), {"meta.pred_emb_dim=96"}), "meta.pred_emb_dim"));
  EXPECT_FALSE(
      has_error(errors_of(minimal(), {"meta.model_name=vit_tiny", "meta.pred_emb_dim=12"}), "meta.pred_emb_dim"));
  EXPECT_TRUE(has_error(errors_of(minimal(), {"metrics.port_offset=pod"}), "metrics.port_offset: 'pod' is not one of"));
  // A checkpoint named but not loaded would be a silent fresh start.
  EXPECT_TRUE(has_error(errors_of(minimal(), {"meta.read_checkpoint=jepa-ep1.pth.tar"}),
                        "meta.read_checkpoint: 'jepa-ep1.pth.tar' is set but meta.load_checkpoint is false"));
  EXPECT_FALSE(has_error(errors_of(minimal(), {"meta.read_checkpoint=jepa-ep1.pth.tar", "meta.load_checkpoint=true"}),
                         "meta.read_checkpoint"));
}

TEST_F(ConfigTest, ResolvedYamlLoadsBackToTheSameConfig) {
  write_file(dir_ / "token", "s3cret\n");
  const Config c = parse_config(
      minimal(), {"optimization.final_lr=1.0e-06", "coordinator.address=127.0.0.1:50051",
                  "coordinator.token_file=" + (dir_ / "token"), "dist.bucket_mb=12.5", "dist.min_buckets=3"});
  const std::string yaml = to_yaml(c);
  const Config back = parse_config(yaml);
  EXPECT_EQ(to_yaml(back), yaml);
  EXPECT_DOUBLE_EQ(back.optimization.final_lr, 1e-6);
  EXPECT_EQ(back.coordinator.token, "s3cret") << "read from the token file again";
  EXPECT_DOUBLE_EQ(back.dist.bucket_mb, 12.5);
  EXPECT_EQ(back.dist.min_buckets, 3);
}

TEST_F(ConfigTest, TheTokenNeverReachesTheWrittenConfig) {
  const Config c = parse_config(minimal(), {"coordinator.address=127.0.0.1:50051", "coordinator.token=s3cret"});
  EXPECT_EQ(c.coordinator.token, "s3cret");
  for (const std::string& text : {to_yaml(c), to_key_lines(c)}) {
    EXPECT_EQ(text.find("s3cret"), std::string::npos) << text;
    EXPECT_NE(text.find(kRedactedToken), std::string::npos) << text;
  }
  // Loaded back, the placeholder is an error naming the key rather than a token sent as it is...
  EXPECT_TRUE(has_error(errors_of(to_yaml(c)), "coordinator.token: '<redacted>' stands for a token left out"));
  // ...unless the token comes from outside the YAML.
  const ScopedTokenVariable variable("from-env");
  EXPECT_EQ(parse_config(to_yaml(c)).coordinator.token, "from-env");
  // Without a coordinator the token is unused, so the placeholder loads as it is.
  EXPECT_NO_THROW(parse_config(to_yaml(parse_config(minimal(), {"coordinator.token=s3cret"}))));
}

TEST_F(ConfigTest, TheTokenComesFromTheYamlElseTheTokenFileElseTheEnvironment) {
  const std::string address = "coordinator.address=127.0.0.1:50051";
  const std::string file = "coordinator.token_file=" + (dir_ / "token");
  write_file(dir_ / "token", "from-file\r\n");
  const ScopedTokenVariable variable("from-env");
  EXPECT_EQ(parse_config(minimal(), {address, "coordinator.token=from-yaml"}).coordinator.token, "from-yaml");
  EXPECT_EQ(parse_config(minimal(), {address, file}).coordinator.token, "from-file");
  EXPECT_EQ(parse_config(minimal(), {address}).coordinator.token, "from-env");
  EXPECT_EQ(parse_config(minimal()).coordinator.token, "") << "no coordinator: the environment is not read";
  EXPECT_TRUE(has_error(errors_of(minimal(), {address, file, "coordinator.token=x"}),
                        "coordinator.token/token_file: give the token in one of them, not both"));
  const std::string missing = dir_ / "missing";
  const auto unreadable =
      errors_of(minimal(), {address, "coordinator.token=<redacted>", "coordinator.token_file=" + missing});
  EXPECT_TRUE(has_error(unreadable, "coordinator.token_file: '" + missing + "' cannot be read"));
  EXPECT_EQ(unreadable.size(), 1u) << ::testing::PrintToString(unreadable);
  write_file(dir_ / "token", "two\nlines\n");
  EXPECT_TRUE(has_error(errors_of(minimal(), {address, file}),
                        "coordinator.token_file: '" + (dir_ / "token") + "': the token must be printable ASCII"));
  write_file(dir_ / "token", "\n");
  EXPECT_TRUE(
      has_error(errors_of(minimal(), {address, file}), "coordinator.token_file: '" + (dir_ / "token") + "' is empty"));
  const ScopedTokenVariable bad_variable("bad token");
  const auto bad = errors_of(minimal(), {address, "coordinator.token=<redacted>"});
  EXPECT_TRUE(has_error(bad, "$IJEPA_COORDINATOR_TOKEN (for coordinator.token): must be"));
  EXPECT_EQ(bad.size(), 1u) << ::testing::PrintToString(bad);
}

// gRPC 1.51 aborts the process on a header value with a line break or a non-ASCII byte: refused at load.
TEST_F(ConfigTest, TokensGrpcCannotSendAreRefusedByKeyPath) {
  for (const char* value : {R"("s3cret\n")", R"("a b")", R"("t\u00f6ken")", R"("\t")"}) {
    const auto errors = errors_of(minimal(), {std::string("coordinator.token=") + value});
    EXPECT_TRUE(has_error(errors, "coordinator.token: must be printable ASCII without spaces (0x21-0x7E)"))
        << value << ": " << ::testing::PrintToString(errors);
  }
  EXPECT_TRUE(errors_of(minimal(), {"coordinator.token=A-z0~9!"}).empty());
}

TEST_F(ConfigTest, AddressesAndRunNameAreCheckedAtLoad) {
  EXPECT_TRUE(has_error(errors_of(minimal(), {"coordinator.address=host:70000"}),
                        "coordinator.address: 'host:70000' is not host:port (port must be 0..65535)"));
  EXPECT_TRUE(
      has_error(errors_of(minimal(), {"coordinator.address=host:0"}), "coordinator.address: 'host:0' has port 0"));
  EXPECT_TRUE(
      has_error(errors_of(minimal(), {"coordinator.address=host"}), "coordinator.address: 'host' is not host:port"));
  EXPECT_TRUE(has_error(errors_of(minimal(), {"metrics.listen=127.0.0.1:99999"}),
                        "metrics.listen: '127.0.0.1:99999' is not host:port (port must be 0..65535)"));
  EXPECT_TRUE(has_error(errors_of(minimal(), {"metrics.listen=9464"}), "metrics.listen: '9464' is not host:port"));
  EXPECT_TRUE(has_error(errors_of(minimal(), {"coordinator.run_name=no/slashes"}),
                        "coordinator.run_name: 'no/slashes' must be 1-128 characters"));
  EXPECT_TRUE(errors_of(minimal(), {"coordinator.address='[::1]:50051'", "metrics.listen=0.0.0.0:0",
                                    "coordinator.run_name=fmnist-1.2"})
                  .empty());
}

TEST_F(ConfigTest, Bf16TakesTheReferencesBooleansOrAutoAndWritesThemBack) {
  const std::vector<std::pair<std::string, Bf16Mode>> cases = {
      {"true", Bf16Mode::kOn}, {"false", Bf16Mode::kOff}, {"auto", Bf16Mode::kAuto}};
  for (const auto& [text, mode] : cases) {
    const Config c = parse_config(minimal(), {"meta.use_bfloat16=" + text});
    EXPECT_EQ(c.meta.use_bfloat16, mode) << text;
    EXPECT_NE(to_key_lines(c).find("\nmeta.use_bfloat16: " + text + "\n"), std::string::npos) << text;
    EXPECT_EQ(parse_config(to_yaml(c)).meta.use_bfloat16, mode) << text;
  }
  EXPECT_EQ(parse_config(minimal()).meta.use_bfloat16, Bf16Mode::kOff);  // the reference's default
}

TEST_F(ConfigTest, KeyLinesNameEveryKeyPathOnItsOwnLine) {
  const std::string lines = to_key_lines(parse_config(minimal(), {"optimization.lr=0.002", "metrics.listen=''"}));
  EXPECT_NE(lines.find("\noptimization.lr: 0.002\n"), std::string::npos) << lines;
  EXPECT_NE(lines.find("\nmask.aspect_ratio: [0.75, 1.5]\n"), std::string::npos) << lines;
  EXPECT_NE(lines.find("\nmetrics.listen: \"\"\n"), std::string::npos) << lines;
  EXPECT_EQ(lines.rfind("data.batch_size: 64\n", 0), 0u) << lines;
}

TEST_F(ConfigTest, MissingFileAndBrokenYamlAreInputErrors) {
  EXPECT_THROW(load_config(dir_ / "missing.yaml"), InputError);
  try {
    load_config(dir_.path().string());  // a folder is not an empty config
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(dir_.path().string() + ": read error (Is a directory)"), std::string::npos)
        << e.what();
  }
  write_file(dir_ / "broken.yaml", "data: [unclosed\n");
  try {
    load_config(dir_ / "broken.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.errors().at(0).find("broken.yaml: not valid YAML"), std::string::npos);
  }
}

}  // namespace
}  // namespace ijepa::common
