// The cgroup of one build: a memory limit (no swap) and a process limit for install and build as a
// whole, every process they fork included, and a way to kill whatever they leave behind.
//
// cgroup v2 (a unified hierarchy at /sys/fs/cgroup): <own cgroup>/dp-builds/<name>, with memory
// and pids enabled in the subtree_control files on the way. A non-root cgroup that holds processes
// cannot enable controllers for children (the "no internal processes" rule), so the processes of
// our own cgroup (this runner, or the worker that started it) move into a leaf <own>/dp-runner
// first; a runner started there later uses <own> again. cgroup v1 (hybrid systems included): the
// same path under the memory and the pids hierarchies, each relative to our own cgroup there.
#pragma once

#include <sys/types.h>

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::runner {

struct cgroup_limits {
  uint64_t memory_bytes = 0;  // 0: none
  uint64_t pids = 0;          // 0: none
};

// The kernel's counters of limits that were hit, read from the cgroup's files.
struct cgroup_counters {
  uint64_t oom_kills = 0;     // v1 memory.oom_control, v2 memory.events: oom_kill
  uint64_t pids_refused = 0;  // pids.events: max (forks refused by pids.max)
};

class build_cgroup {
 public:
  // An error says why no cgroup can be made here (not root, no memory controller, read-only
  // /sys/fs/cgroup in a container...); the caller runs without it and says so.
  static result<build_cgroup> create(const std::string& name, const cgroup_limits& limits);

  build_cgroup(build_cgroup&& o) noexcept;
  build_cgroup& operator=(build_cgroup&&) = delete;
  build_cgroup(const build_cgroup&) = delete;
  ~build_cgroup();  // kills what is left and removes the cgroup, without waiting

  // Open cgroup.procs descriptors for process::options::cgroup_procs.
  const std::vector<int>& procs_fds() const noexcept { return procs_fds_; }
  cgroup_counters counters() const;
  // SIGKILLs every process in the cgroup (cgroup.kill on v2; else each pid of cgroup.procs, again
  // until none is left, which also catches a fork bomb) and waits until it is empty.
  boost::asio::awaitable<result<void>> kill_all();
  // kill_all, then rmdir.
  boost::asio::awaitable<result<void>> remove();

  int version() const noexcept { return version_; }
  // "cgroup v2 /sys/fs/cgroup/.../dp-builds/<name>"
  std::string describe() const;

 private:
  build_cgroup() = default;
  bool kill_round() const;  // true when no process was left
  void close_fds();

  int version_ = 0;
  std::vector<std::filesystem::path> dirs_;  // v1: memory, then pids (if any); v2: one
  std::vector<int> procs_fds_;
  bool removed_ = false;
};

// The limits of the container this process runs in, read (not set) at the root of its cgroup
// mounts, which a container sees as its own (/sys/fs/cgroup, read-only): a runner in a build
// container has no cgroup of its own, but the container's counters still name the limit a build
// hit. Counters are since the container started: compare with a reading taken before.
struct container_limits {
  uint64_t memory_bytes = 0;  // 0: none found
  uint64_t pids = 0;          // 0: none found
  cgroup_counters counters() const;
  int version = 0;
};
// nullopt when no memory or pids limit is visible at /sys/fs/cgroup (not in a limited container).
std::optional<container_limits> read_container_limits();

// SIGKILLs every process whose real or effective uid is `uid` (rounds over /proc until none is
// left alive, which also catches a fork in flight), then reaps those of them that were this
// process's children (as pid 1 of a container, it inherits the orphans). For a runner without a
// cgroup for the build (in a container): the build's own uid runs nothing else. Returns how many
// processes were killed.
int kill_processes_of(uid_t uid);

// The dp-builds directories that exist where build_cgroup::create would make a build's cgroup
// from this process (v2: one; v1: under the memory and the pids hierarchies). For the sweep.
std::vector<std::filesystem::path> build_cgroup_parents();

// Kills every process in one build's cgroup directories (rounds of SIGKILL until none is left)
// and removes them: a blocking kill_all and remove, for the sweep of a dead runner's cgroup.
result<void> remove_cgroup_dirs(const std::vector<std::filesystem::path>& dirs);

// Whether this machine's /sys/fs/cgroup is the unified (v2) hierarchy: 2, else 1 (v1 or hybrid).
int cgroup_version();

}  // namespace dp::runner
