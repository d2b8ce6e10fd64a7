// Unpacking an uploaded source (deployctl deploy <directory>). The archive is hostile data: GNU
// tar unpacks it inside the build's sandbox as the build's uid (`source_unpack_argv`), within the
// build's disk quota and time limit, so that what it writes reaches at most the build's own work
// directory, as the build's own commands could. tar refuses ".." names, writes through symlinks and
// hard links to anything outside the tree, strips a leading "/", restores no owner and no set-id
// bit. The runner then walks the result without following anything (`check_unpacked_tree`) and
// refuses what tar lets through but a source tree has no use for: FIFOs, devices, sockets, symlinks
// that resolve outside the tree, and trees beyond the limits.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::buildplan {

struct archive_limits {
  uint64_t max_bytes = uint64_t{1} << 30;  // the sum of the regular files' sizes
  uint64_t max_members = 100'000;          // files, directories and symlinks
};

struct archive_report {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// tar's argv that unpacks the gzip-compressed `archive` into the existing directory `dir` (both as
// the sandbox sees them). Run without the project's variables (TAR_OPTIONS).
std::vector<std::string> source_unpack_argv(const std::string& archive, const std::string& dir);

// Walks the unpacked tree `dir` with lstat only (nothing is opened, read or followed but the
// symlinks' targets, resolved to check where they lead). A member refused is
// errc::invalid_argument naming it; a limit errc::too_large; a walk that fails errc::io.
dp::result<archive_report> check_unpacked_tree(const std::filesystem::path& dir,
                                               const archive_limits& limits);

}  // namespace dp::buildplan
