// Paths of a build's tree, read by the trusted runner through a directory descriptor opened
// before the build ran, never through a host path: the build may have replaced any directory or
// file of its tree with a symlink (to "/", to a root-only file), and a path resolved on the host
// would follow it.
//
// open_beneath proves each component a real directory inside the descriptor's tree:
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) on Linux >= 5.6, else
// one openat(O_NOFOLLOW | O_DIRECTORY) per component. resolve_beneath follows the symlinks that
// stay inside (what a site's author means by `ln -s index.html home.html`) in user space, as the
// kernel would, and returns a path without any symlink, which open_beneath then opens.
#pragma once

#include <sys/stat.h>

#include <string>
#include <string_view>

#include "dp/core/error.hpp"
#include "dp/core/unique_fd.hpp"

namespace dp::buildplan {

// Opens `rel` ('/'-separated, relative; empty is `dir` itself) beneath `dir` with `flags`
// (O_CLOEXEC and O_NOFOLLOW are added). A symlink anywhere in it, "..", or an absolute path is an
// error; so is a missing component (errc::not_found).
result<unique_fd> open_beneath(int dir, std::string_view rel, int flags);

// `rel` with its symlinks resolved beneath `dir`: relative targets only, never above `dir`, at
// most 40 links. The result names real directories and a last component that exists (it may be
// anything but a symlink); "" is `dir` itself. errc::invalid_argument names the link that leads
// outside; errc::not_found a missing component.
result<std::string> resolve_beneath(int dir, std::string_view rel);

// Opens a directory as the root of later lookups: O_DIRECTORY | O_NOFOLLOW on the last component,
// so the path must not end in a symlink. For paths the runner made itself (the work directory).
result<unique_fd> open_directory(const std::string& path);

// Tests: use the per-component walk even where openat2 exists, so that both paths are checked.
void use_openat2_for_tests(bool on) noexcept;

// The same file: device and inode.
inline bool same_file(const struct stat& a, const struct stat& b) noexcept {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace dp::buildplan
