// Validation of a build's output before upload, by the trusted runner: what is published, under
// which key, with its size and SHA-256. The sandboxed build has ended, but its tree is the
// build's: every file is reached through the output directory's descriptor and real directories
// (beneath.hpp), and the upload reopens the very inode that was validated (open_output_file).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dp/core/error.hpp"
#include "dp/core/unique_fd.hpp"

namespace dp::buildplan {

struct output_file {
  std::string key;   // relative to the output directory, '/'-separated
  std::string path;  // what to upload, relative to the output directory, without symlinks (a
                     // symlink's target when it stays inside)
  uint64_t size = 0;
  std::string sha256;  // lowercase hex
  uint64_t dev = 0;    // the inode validated (and its last change): the upload reads this one
  uint64_t ino = 0;    // or nothing
  int64_t ctime_ns = 0;
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

// Walks the directory open at `dir`: regular files are published; a symlink that stays inside
// `dir` (relative target, resolved beneath it, never on the host) is published as its target (a
// directory link is walked, loops are cut); a symlink that leaves `dir` (absolute, or above it),
// special files, `.git`, directories nested deeper than 128 and names with control characters,
// backslashes or invalid UTF-8 are skipped with a warning. Exceeding a limit is an error
// (errc::too_large) that says which limit.
result<output_listing> scan_output(int dir, const output_limits& limits = {});
// The same for a directory path the caller trusts (tests): opened, then walked as above.
result<output_listing> scan_output(const std::filesystem::path& dir,
                                   const output_limits& limits = {});

// Opens a listed file for upload, beneath `dir` (the descriptor scan_output walked) through real
// directories only, and checks that it is the inode validated, of the size validated: a file
// swapped afterwards (for a symlink, another file) is an error (errc::conflict), never read.
result<unique_fd> open_output_file(int dir, const output_file& file);

// Lowercase hex SHA-256 of what is left to read from `fd`, and the number of bytes read.
result<std::pair<std::string, uint64_t>> sha256_fd(int fd);

}  // namespace dp::buildplan
