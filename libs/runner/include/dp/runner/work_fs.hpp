// The work directory of one build with its disk quota: the checkout, HOME, npm's cache and the
// sandbox's /tmp all live in it, so one limit covers everything a build writes.
//
// Preferred (a root runner with loop devices): the directory is the mount point of an ext4
// filesystem of exactly the quota, made in a sparse image next to it (mkfs with lazy
// initialisation, no journal: ~50 ms; a loop device set up by ioctl with autoclear, so the
// unmount frees it). A full filesystem refuses writes with ENOSPC. Otherwise (not root, no
// /dev/loop-control, a container): a plain directory, RLIMIT_FSIZE of the quota per file for the
// build's commands, and a usage poller (the runner's) that stops the build when the directory's
// total passes the quota.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "dp/core/error.hpp"

namespace dp::runner {

enum class disk_quota { filesystem, poller, none };

struct work_fs_options {
  std::filesystem::path dir;  // made here; its parent must exist
  uint64_t quota_bytes = 0;   // 0: no quota, a plain directory
  bool allow_filesystem = true;
};

class work_fs {
 public:
  // Makes the directory (and its filesystem). An error only when not even a plain directory can
  // be made; a filesystem that cannot be made falls back to the poller (fallback_reason says why).
  static boost::asio::awaitable<result<work_fs>> make(work_fs_options o);

  work_fs(work_fs&& o) noexcept;
  work_fs& operator=(work_fs&&) = delete;
  work_fs(const work_fs&) = delete;
  ~work_fs();  // release()

  const std::filesystem::path& dir() const noexcept { return dir_; }
  disk_quota kind() const noexcept { return kind_; }
  uint64_t quota_bytes() const noexcept { return quota_; }
  // Why the filesystem could not be made (empty when it was, or was not tried).
  const std::string& fallback_reason() const noexcept { return fallback_reason_; }
  // "an ext4 filesystem of 64 MiB (/dev/loop3)", "a usage poller (RLIMIT_FSIZE ...)", "none".
  std::string describe() const;

  // Bytes in use: statfs of the filesystem, or a walk of the directory (blocks allocated,
  // hard links once, not crossing into other filesystems).
  uint64_t used_bytes() const;
  // The quota is (nearly) reached: what a failed command's ENOSPC looks like afterwards.
  bool full() const;

  // Unmounts the filesystem (the loop device goes with it) and deletes the image; the directory
  // itself stays, for the caller to remove. Idempotent.
  result<void> release();

 private:
  work_fs() = default;

  std::filesystem::path dir_;
  std::filesystem::path image_;
  std::string device_;
  disk_quota kind_ = disk_quota::none;
  uint64_t quota_ = 0;
  std::string fallback_reason_;
  bool mounted_ = false;
};

// Moves this process into a mount namespace of its own, with every mount private, so that the
// work filesystems it mounts vanish with it: a runner killed with SIGKILL (a worker's kill, an
// OOM) leaves no mount or loop device behind, since the last process of the namespace takes its
// mounts (and, through autoclear, their loop devices) along. Call it from main before any thread
// starts (unshare(CLONE_NEWNS) refuses a process whose threads share its filesystem context).
// Root only; an error says why (the caller runs on, with mounts in the host's namespace).
result<void> enter_private_mount_namespace();

// Bytes allocated under `dir` (see used_bytes).
uint64_t directory_usage(const std::filesystem::path& dir);

}  // namespace dp::runner
