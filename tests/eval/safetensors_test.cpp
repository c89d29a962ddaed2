// The hand-written safetensors writer and reader: round trips of every dtype, the layout the format fixes,
// and malformed files rejected with InputError naming the file.
#include "eval/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "common/errors.h"
#include "test_util.h"

namespace ijepa::eval {
namespace {

using ijepa::testing::TempDir;

uint64_t header_length(const std::string& bytes) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return n;
}

TEST(Safetensors, RoundTripsTensorsAndMetadata) {
  TempDir dir;
  const NamedTensors tensors = {
      {"blocks.0.attn.qkv.weight", torch::randn({6, 2})},
      {"pos_embed", torch::randn({1, 4, 3}, torch::kFloat64)},
      {"half", torch::randn({5}).to(torch::kBFloat16)},
      {"f16", torch::randn({2, 2}).to(torch::kFloat16)},
      {"ints", torch::arange(7, torch::kInt64)},
      {"bytes", torch::arange(3, torch::kUInt8)},
      {"flags", torch::tensor({true, false, true})},
      {"empty", torch::zeros({0, 3})},
      {"strided", torch::arange(12, torch::kFloat32).reshape({3, 4}).t()},  // not contiguous
  };
  const std::string path = dir / "x.safetensors";
  write_safetensors(path, tensors, {{"embed_dim", "3"}, {"format", "pt"}});

  const auto file = read_safetensors(path);
  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(file.tensors[i].first, tensors[i].first) << "file order is the written order";
    EXPECT_EQ(file.tensors[i].second.scalar_type(), tensors[i].second.scalar_type()) << tensors[i].first;
    EXPECT_TRUE(torch::equal(file.tensors[i].second, tensors[i].second)) << tensors[i].first;
  }
  EXPECT_EQ(file.metadata.at("embed_dim"), "3");
  EXPECT_EQ(file.metadata.at("format"), "pt");
}

TEST(Safetensors, HeaderIsAlignedJsonWithOffsets) {
  TempDir dir;
  const std::string path = dir / "x.safetensors";
  write_safetensors(path, {{"a", torch::ones({2}, torch::kFloat32)}, {"b", torch::ones({3}, torch::kInt64)}}, {});
  const std::string bytes = ijepa::testing::read_file(path);
  const uint64_t n = header_length(bytes);
  EXPECT_EQ((8 + n) % 8, 0u);
  const std::string header = bytes.substr(8, n);
  EXPECT_NE(header.find(R"("a":{"data_offsets":[0,8],"dtype":"F32","shape":[2]})"), std::string::npos) << header;
  EXPECT_NE(header.find(R"("b":{"data_offsets":[8,32],"dtype":"I64","shape":[3]})"), std::string::npos) << header;
  EXPECT_EQ(bytes.size(), 8 + n + 32);
  float first = 0;
  std::memcpy(&first, bytes.data() + 8 + n, 4);
  EXPECT_EQ(first, 1.0f);
}

TEST(Safetensors, RejectsDuplicateNames) {
  TempDir dir;
  EXPECT_THROW(write_safetensors(dir / "x.safetensors", {{"a", torch::ones({1})}, {"a", torch::ones({1})}}, {}),
               common::InputError);
}

void expect_rejected(const std::string& path, const std::string& bytes, const std::string& why) {
  ijepa::testing::write_file(path, bytes);
  try {
    read_safetensors(path);
    FAIL() << "accepted a file with " << why;
  } catch (const common::InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

std::string with_header(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  return out + json + data;
}

TEST(Safetensors, RejectsMalformedFiles) {
  TempDir dir;
  const std::string path = dir / "bad.safetensors";
  EXPECT_THROW(read_safetensors(dir / "missing.safetensors"), common::InputError);
  expect_rejected(path, "abc", "fewer than 8 bytes");
  expect_rejected(path, with_header("{}", "").substr(0, 9), "a header beyond the end");
  expect_rejected(path, with_header("{not json", ""), "a header that is not JSON");
  expect_rejected(path, with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"),
                  "truncated data");
  expect_rejected(path, with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678"),
                  "offsets that disagree with the shape");
  expect_rejected(path, with_header(R"({"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}})", "12345678"),
                  "an unknown dtype");
  expect_rejected(path, with_header(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", "1234"),
                  "a gap before the first tensor");
  expect_rejected(path, with_header(R"({"__metadata__":{"k":1}})", ""), "non-string metadata");
  // 2^32 * 2^32 * 2 floats: the element count wraps to 0 in 64 bits, matching empty offsets.
  expect_rejected(path,
                  with_header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,0]}})", ""),
                  "a shape whose size overflows");
  // Empty, but its strides would overflow.
  expect_rejected(path,
                  with_header(R"({"a":{"dtype":"U8","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}})", ""),
                  "an empty shape whose strides overflow");
}

TEST(Safetensors, AnEmptyTensorMayShareItsOffsetWithTheNext) {
  TempDir dir;
  const std::string path = dir / "x.safetensors";
  ijepa::testing::write_file(
      path,
      with_header(
          R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}})",
          "\x07\x09"));
  const auto file = read_safetensors(path);
  ASSERT_EQ(file.tensors.size(), 2u);
  EXPECT_EQ(file.tensors[0].first, "b");
  EXPECT_EQ(file.tensors[0].second.numel(), 0);
  EXPECT_TRUE(torch::equal(file.tensors[1].second, torch::tensor({7, 9}, torch::kUInt8)));
}

}  // namespace
}  // namespace ijepa::eval
