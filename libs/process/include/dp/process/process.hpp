// Child processes for the build runner: argv without a shell, an environment built from scratch,
// stdout and stderr delivered line by line, rlimits, a wall-clock timeout and cancellation that
// take down the child's whole process group.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/config.hpp"
#include "dp/core/error.hpp"

namespace dp::process {

enum class stream { out, err };
std::string_view to_string(stream s) noexcept;  // "stdout" / "stderr"

// Resource limits applied in the child before exec (soft = hard, except CPU where the hard limit
// is one second later so that SIGXCPU names the cause). Unset means inherited.
// RLIMIT_NPROC counts every process of the real uid and is not enforced for root.
struct resource_limits {
  std::optional<uint64_t> cpu_seconds;
  std::optional<uint64_t> processes;
  std::optional<uint64_t> file_size_bytes;
  std::optional<uint64_t> address_space_bytes;
};

struct options {
  // argv[0] is an absolute path, or a name searched in env's PATH (never the runner's PATH).
  std::vector<std::string> argv;
  // The child's whole environment: nothing of the parent's is inherited.
  config::environment env;
  std::string cwd;  // empty: the parent's working directory
  resource_limits limits;
  // Zero means no wall-clock limit.
  std::chrono::milliseconds timeout{0};
  // Between SIGTERM and SIGKILL to the process group on timeout or cancel.
  std::chrono::milliseconds kill_grace{1000};
  // Longer lines are cut here and marked with truncation_marker; the rest of the line is dropped.
  size_t max_line_bytes = 8192;
  // Open descriptors of cgroup.procs files (one per cgroup v1 hierarchy, or the v2 one): the child
  // moves itself into each between fork and exec, so everything it forks is counted from the
  // start. The caller keeps them open until run() has returned.
  std::vector<int> cgroup_procs;
  // Descriptors of this process the child gets at the given numbers (3 and up, distinct), for
  // protocols over pipes (bwrap's --info-fd, slirp4netns's --ready-fd). The caller keeps its own.
  struct inherited_fd {
    int parent;
    int child;
  };
  std::vector<inherited_fd> inherit_fds;
};

inline constexpr std::string_view truncation_marker = "\u2026 [line truncated]";

struct exit_status {
  int code = -1;           // exit code when the process exited normally, else -1
  int signal = 0;          // the signal that ended it, else 0
  bool timed_out = false;  // we killed it because options.timeout passed
  bool canceled = false;   // we killed it because the caller canceled
  std::chrono::milliseconds duration{0};

  bool success() const noexcept { return code == 0 && !timed_out && !canceled; }
  // "exited with code 1", "killed by signal 9 (SIGKILL)", "timed out after 12.3 s", "canceled".
  std::string describe() const;
};

// Called on the process's strand for every line (without its newline). A final line without a
// newline is delivered too. Bytes are passed as they are: no UTF-8 validation here.
using line_handler = std::function<void(stream, std::string_view line)>;

// Runs the child to completion. The child gets its own process group, stdin from /dev/null, no
// inherited descriptors but inherit_fds, and SIGKILL if this process dies (PR_SET_PDEATHSIG). When
// the child exits, whatever it left running in its group is killed too, so nothing outlives a
// build. Note: PR_SET_PDEATHSIG fires when the *thread* that forked exits, so call this from
// threads that live as long as the children (io_context threads), not from short-lived ones.
// Children are watched through pidfds (no SIGCHLD handler, no waitpid(-1)), so any number can
// run at once; the process must not set SIGCHLD to SIG_IGN (children would be reaped early).
//
// Cancellation: a terminal/partial cancellation on the awaiting operation's slot (e.g.
// bind_cancellation_slot, or awaitable operators) SIGTERMs the group, then SIGKILLs it after
// kill_grace; the call then completes with canceled = true. An error is returned only when the
// child could not be started (fork, exec, bad cwd) or its output could not be read.
boost::asio::awaitable<result<exit_status>> run(options opts, line_handler on_line);

// What run() executes for argv[0] `name`: a name with a '/' as it is; else the first regular,
// executable file of that name in env's PATH (/usr/bin:/bin when env has none; an empty entry is
// the working directory). errc::not_found names the PATH searched.
result<std::string> find_program(std::string_view name, const config::environment& env);

}  // namespace dp::process
