// The bubblewrap sandbox that install and build commands run in, and their environment.
//
// Inside: new pid, ipc, uts (and cgroup) namespaces, no capabilities, a read-only view of /usr
// and of the few /etc files programs need (DNS, TLS roots, users, the loader cache), fresh /proc
// and /dev, a private /tmp, and the work directory writable at mount_point. Nothing else of the
// host: no /root or /home, no /var, no /run, no /etc/ssl/private. Its own network namespace:
// `egress` (the default) reaches public addresses through slirp4netns and nothing of the host or
// its networks (see run_sandboxed); `none` has only a loopback. The process is killed when the
// runner dies (--die-with-parent).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dp/core/config.hpp"
#include "dp/core/error.hpp"
#include "dp/process/process.hpp"

namespace dp::runner {

// BUILD_NETWORK. egress: public addresses only, through slirp4netns (needs a root runner);
// none: a loopback of its own and nothing else.
enum class network_mode { egress, none };
std::string_view to_string(network_mode m) noexcept;
std::optional<network_mode> parse_network_mode(std::string_view s) noexcept;

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
  network_mode network = network_mode::egress;
  std::string slirp4netns = "slirp4netns";  // egress: found in the PATH of sandbox_runner_env()
};

// The descriptors bwrap gets for egress (run_sandboxed provides them): it reports the sandbox's
// pid on info, waits on block until the network is set up, and reads the sandbox's resolv.conf
// from resolv.
struct sandbox_fds {
  static constexpr int info = 3;
  static constexpr int block = 4;
  static constexpr int resolv = 5;
};

// The switch from a root runner to a build's own uid (and gid of the same number) in front of
// `command`: setpriv with no supplementary groups, no capability left (inheritable, ambient and
// the bounding set cleared) and no_new_privs. It needs CAP_SETUID, CAP_SETGID and CAP_SETPCAP;
// once it has switched, the command holds nothing. bwrap_argv puts it inside the sandbox, a
// runner without one (a container) in front of the command.
std::vector<std::string> switch_uid_argv(unsigned uid, const std::vector<std::string>& command);

// bwrap <options> -- <command...>. Run it with a minimal environment (sandbox_runner_env()):
// bwrap itself runs outside the sandbox, so user variables must never reach it. With egress it
// expects sandbox_fds: run it through run_sandboxed.
std::vector<std::string> bwrap_argv(const sandbox_options& opts,
                                    const std::vector<std::string>& command);
config::environment sandbox_runner_env();

enum class phase { install, build };

// The environment of an install or build command, from scratch: PATH (corepack's shims in the
// work directory first), HOME (inside the work directory), TMPDIR, CI=1, LANG=C.UTF-8, npm's
// cache and COREPACK_HOME inside the work directory, corepack's settings (no prompt, no pin, the
// npm registry, no key check), the system's CA bundle for Node (NODE_EXTRA_CA_CERTS, when the
// file exists), NODE_ENV=production for the build only (install runs without it,
// see plan.hpp), then the project's own variables, which may override CI, NODE_ENV, LANG and
// corepack's settings but not PATH, HOME, TMPDIR, the npm cache or COREPACK_HOME. Nothing comes
// from the runner's environment. Invalid or reserved names are errors.
result<config::environment> sandbox_env(phase p, const std::string& mount_point,
                                        const config::environment& project_env);

// Runs `command` in the sandbox: `o` gives the limits, timeout, grace and cwd (of bwrap); its argv,
// env and inherit_fds are set here. For egress, while bwrap waits on its block descriptor:
// slirp4netns (host loopback disabled, its own sandbox and seccomp filter) gives the namespace a
// tap device behind user-mode NAT, then routes inside it make every private (RFC 1918), CGNAT,
// link-local, multicast and reserved IPv4 range, the host's own addresses and their subnets, the
// slirp gateway (the host) and all of IPv6 unreachable, and policy rules let only port 53 reach
// slirp's DNS forwarder. slirp4netns is stopped and reaped when bwrap ends. Cancellation of the
// caller is passed on to bwrap (process::run's SIGTERM, then SIGKILL). An error means the
// sandbox could not be set up (infrastructure), never that the command failed.
boost::asio::awaitable<result<process::exit_status>> run_sandboxed(sandbox_options so,
                                                                   std::vector<std::string> command,
                                                                   process::options o,
                                                                   process::line_handler on_line);

// The `ip -batch` lines that close the egress namespace, given the host's own addresses
// (address/prefix, as from getifaddrs). Exposed for its unit test.
std::string egress_route_batch(const std::vector<std::string>& host_networks);
// The host's IPv4 and IPv6 interface networks, loopback excluded ("192.0.2.2/24").
std::vector<std::string> host_networks();

// Runs a trivial command under bwrap with the namespaces we use. An error says why it cannot
// work here (for example inside an unprivileged container), with bwrap's own message.
boost::asio::awaitable<result<void>> probe_bwrap(std::string bwrap = "bwrap");

}  // namespace dp::runner
