// Unpacking an uploaded source (deployctl deploy <directory>): a tar.gz read and checked member by
// member before anything is written, so a hostile archive cannot reach outside the work tree.
// Refused: absolute names, ".." segments, members under a symlink of the archive, symlinks whose
// target leaves the tree, hard links to anything but an earlier regular file, devices, FIFOs,
// sparse and unknown member types, and archives beyond the limits (a hard link is unpacked as a
// copy and counts its target's full size). Owners and permission bits
// other than "executable" are ignored: files are 0644 or 0755, directories 0755.
#pragma once

#include <cstdint>
#include <filesystem>

#include "dp/core/error.hpp"

namespace dp::buildplan {

struct archive_limits {
  uint64_t max_bytes = uint64_t{1} << 30;  // the sum of the members' sizes (a hard link: its
                                           // target's, since it is unpacked as a copy)
  uint64_t max_members = 100'000;
};

struct archive_report {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Extracts `archive` (gzip-compressed tar: ustar, GNU long names, pax headers) into `dest`, which
// must exist. A refused or malformed archive is errc::invalid_argument naming the member; a
// limit errc::too_large; local I/O errc::io. Symlinks are created last.
dp::result<archive_report> extract_tar_gz(const std::filesystem::path& archive,
                                          const std::filesystem::path& dest,
                                          const archive_limits& limits);

}  // namespace dp::buildplan
