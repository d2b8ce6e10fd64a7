// The bubblewrap sandbox that install and build commands run in, and their environment.
//
// Inside: new pid, ipc, uts (and cgroup) namespaces, no capabilities, a read-only view of /usr
// and of the few /etc files programs need (DNS, TLS roots, users, the loader cache), fresh /proc
// and /dev, a private /tmp, and the work directory writable at mount_point. Nothing else of the
// host: no /root or /home, no /var, no /run, no /etc/ssl/private. The network is kept: npm needs
// the registry. The process is killed when the runner dies (--die-with-parent).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dp/core/config.hpp"
#include "dp/core/error.hpp"

namespace dp::build {

struct sandbox_options {
  std::string bwrap = "bwrap";     // found in the PATH of the environment that runs it
  std::filesystem::path work_dir;  // host directory, writable inside
  std::string mount_point = "/build";
  std::string cwd;  // inside the sandbox; empty: mount_point
  // The command's whole environment (--clearenv, then --setenv for each; bwrap adds PWD).
  config::environment env;
  // Run the command as this uid (and gid of the same number) with no capabilities, bounding set
  // and no_new_privs included: bwrap keeps only CAP_SETUID, CAP_SETGID and CAP_SETPCAP for
  // setpriv, which gives them up. For a root runner, whose limits (RLIMIT_NPROC) would not hold
  // for uid 0. work_dir must belong to that uid. nullopt: as the caller.
  std::optional<unsigned> uid;
  // A host directory bound at /tmp (inside the work directory, so under its disk quota); empty:
  // a tmpfs, which costs memory.
  std::filesystem::path tmp_dir;
};

// bwrap <options> -- <command...>. Run it with a minimal environment (sandbox_runner_env()):
// bwrap itself runs outside the sandbox, so user variables must never reach it.
std::vector<std::string> bwrap_argv(const sandbox_options& opts,
                                    const std::vector<std::string>& command);
config::environment sandbox_runner_env();

enum class phase { install, build };

// The environment of an install or build command, from scratch: PATH, HOME (inside the work
// directory), TMPDIR, CI=1, LANG=C.UTF-8, npm's cache inside the work directory,
// NODE_ENV=production for the build only (install runs without it, see plan.hpp), then the
// project's own variables, which may override CI, NODE_ENV, LANG but not PATH, HOME, TMPDIR or the
// npm cache. Nothing comes from the runner's environment. Invalid or reserved names are errors.
result<config::environment> sandbox_env(phase p, const std::string& mount_point,
                                        const config::environment& project_env);

// Runs a trivial command under bwrap with the namespaces we use. An error says why it cannot
// work here (for example inside an unprivileged container), with bwrap's own message.
boost::asio::awaitable<result<void>> probe_bwrap(std::string bwrap = "bwrap");

}  // namespace dp::build
