// Validation of a build's output before upload, by the trusted runner: what is published, under
// which key, with its size and SHA-256. The sandboxed build has ended, so the tree is stable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::build {

struct output_file {
  std::string key;               // relative to the output directory, '/'-separated
  std::filesystem::path source;  // what to upload (a symlink's target when it stays inside)
  uint64_t size = 0;
  std::string sha256;  // lowercase hex
};

struct output_limits {
  size_t max_files = 20000;
  uint64_t max_bytes = uint64_t{1} << 30;
};

struct output_listing {
  std::vector<output_file> files;  // sorted by key
  uint64_t total_bytes = 0;
  // One line per skipped entry (at most max_warnings, then a count), for the build log.
  std::vector<std::string> warnings;
};

// Walks `dir`: regular files are published; a symlink that stays inside `dir` is published as its
// target (a directory link is walked, loops are cut); a symlink that leaves `dir`, special files,
// `.git` and names with control characters, backslashes or invalid UTF-8 are skipped with a
// warning. Exceeding a limit is an error (errc::too_large) that says which limit.
result<output_listing> scan_output(const std::filesystem::path& dir,
                                   const output_limits& limits = {});

// Lowercase hex SHA-256 of a file's content, and the number of bytes read.
result<std::pair<std::string, uint64_t>> sha256_file(const std::filesystem::path& file);

}  // namespace dp::build
