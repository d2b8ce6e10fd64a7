// What a runner killed with SIGKILL (a crashed worker's, an OOM kill's) leaves behind, and the
// sweep that removes it: the build's cgroup with the processes still in it (a sandbox that
// outlived the runner keeps the work filesystem and its loop device alive), and work
// directories nobody removes.
//
// Ownership is in the names. A build's work directory and its cgroup are named
// `dp-build-<deployment>-<random>-p<pid>-<start>`, where pid and start (the start time in clock
// ticks since boot, /proc/<pid>/stat field 22) are the runner's; the process launcher's
// per-build TMPDIR is `dp-build-<deployment>-<attempt>-p<pid>-<start>` with the worker's. A name
// is stale when no process with that pid and start time is alive (a zombie counts as dead): pid
// reuse cannot make a dead owner look alive. Names without an owner (an older runner's) are
// never touched, nor is anything that is not ours: only `dp-build-*` entries owned by our uid,
// not symlinks, directly in a work root or one level below a live launcher directory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dp::runner {

struct build_owner {
  pid_t pid = 0;
  uint64_t start = 0;  // clock ticks since boot
};

// This process as an owner.
build_owner current_owner();
// `base` + "-p<pid>-<start>" of this process (`base` alone when its start time cannot be read).
std::string owned_name(std::string_view base);
// The owner a name carries ("dp-build-...-p<pid>-<start>", ".img" allowed), if any.
std::optional<build_owner> name_owner(std::string_view name);
// Whether the owner is alive: the pid exists, is not a zombie and started at `start`.
bool owner_alive(const build_owner& o);

struct sweep_options {
  std::vector<std::filesystem::path> work_roots;  // where runners and launchers make work dirs
};

struct sweep_report {
  std::vector<std::string> removed;  // "cgroup <dir>", "work directory <dir>", "image <file>"
  std::vector<std::string> errors;
};

// Kills and removes the cgroups of dead runners (under build_cgroup_parents()), then removes
// their work directories (detaching a work filesystem still mounted in our namespace) and images.
// Blocking; run it from a process of its own (`build-runner sweep`).
sweep_report sweep_stale_builds(const sweep_options& o);

}  // namespace dp::runner
