#include "common/sha256.h"

#include <gtest/gtest.h>

#include "common/errors.h"
#include "test_util.h"

namespace ijepa::common {
namespace {

TEST(Sha256Test, KnownDigests) {
  Sha256 empty;
  EXPECT_EQ(empty.hex_digest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 abc;
  abc.update("a");
  abc.update("bc");  // streaming equals one update
  EXPECT_EQ(abc.hex_digest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, FileDigestAndMissingFile) {
  ijepa::testing::TempDir dir;
  ijepa::testing::write_file(dir / "f", "abc");
  EXPECT_EQ(sha256_file(dir / "f"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_THROW(sha256_file(dir / "nope"), InputError);
}

}  // namespace
}  // namespace ijepa::common
