// common/files.h: what a path that is not the file or folder asked for is called, whole-file reads that fail
// naming the file, and atomic writes that leave the old file or the new one.
#include "common/files.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "input_error.h"
#include "test_util.h"

namespace ijepa::common {
namespace {

namespace fs = std::filesystem;
using ijepa::testing::expect_input_error;

class FilesTest : public ::testing::Test {
 protected:
  ijepa::testing::TempDir dir_;
};

TEST_F(FilesTest, APathIsNamedForWhatItIsWhenItIsNotWhatWasAskedFor) {
  write_file_atomic(dir_ / "file", "x");
  fs::create_directory(dir_ / "folder");
  fs::create_symlink(dir_ / "gone", dir_ / "dangling");

  EXPECT_EQ(path_problem(dir_ / "file", PathKind::kFile), "");
  EXPECT_EQ(path_problem(dir_ / "folder", PathKind::kFolder), "");
  EXPECT_EQ(path_problem(dir_ / "file", PathKind::kFolder), "is a file, not a folder");
  EXPECT_EQ(path_problem(dir_ / "folder", PathKind::kFile), "is a folder, not a file");
  EXPECT_EQ(path_problem(dir_ / "absent", PathKind::kFile), "does not exist");
  EXPECT_EQ(path_problem(dir_ / "file/below", PathKind::kFile), "does not exist");
  EXPECT_EQ(path_problem(dir_ / "dangling", PathKind::kFile),
            "is a link to " + dir_ / "gone" + ", which does not exist");

  expect_input_error([&] { require_path("checkpoint", dir_ / "folder", PathKind::kFile); },
                     {"checkpoint " + dir_ / "folder" + ": is a folder, not a file"});
  EXPECT_NO_THROW(require_path("checkpoint", dir_ / "file", PathKind::kFile));
}

TEST_F(FilesTest, AFileThatCannotBeReadIsAnInputErrorNamingIt) {
  // common:: qualified: this binary is built as one unity file, in which config_test.cpp brings in testing::read_file.
  expect_input_error([&] { common::read_file(dir_ / "absent"); }, {dir_ / "absent"});
  fs::create_directory(dir_ / "folder");
  expect_input_error([&] { common::read_file(dir_ / "folder"); }, {dir_ / "folder"});
}

TEST_F(FilesTest, AnAtomicWriteReplacesTheFileAndLeavesNothingBeside) {
  write_file_atomic(dir_ / "out", "first");
  write_file_atomic(dir_ / "out", "second");
  EXPECT_EQ(common::read_file(dir_ / "out"), "second");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_.path()), fs::directory_iterator()), 1);

  // A write that cannot start names the file and leaves the folder as it was.
  try {
    write_file_atomic(dir_ / "absent/out", "x");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir_ / "absent/out"), std::string::npos) << e.what();
  }
  EXPECT_EQ(common::read_file(dir_ / "out"), "second");
}

}  // namespace
}  // namespace ijepa::common
