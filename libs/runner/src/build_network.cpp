// The sandbox's network namespace: bwrap --unshare-net, then for `egress` slirp4netns and the
// routes that leave only public addresses reachable (sandbox.hpp says what and why).
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <unistd.h>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <memory>

#include "dp/runner/sandbox.hpp"

namespace dp::runner {
namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// slirp4netns's defaults: the namespace is 10.0.2.100/24, the host (gateway) 10.0.2.2, DNS
// 10.0.2.3. Any port of the DNS alias is forwarded to the host's resolver (slirp4netns(1),
// "FILTERING CONNECTIONS"), hence the rules that let only port 53 through.
constexpr const char* slirp_network = "10.0.2.0/24";
constexpr const char* slirp_dns = "10.0.2.3";
constexpr const char* tap_name = "tap0";

// Nothing of these is the public internet: private networks (RFC 1918), CGNAT (RFC 6598),
// link-local (cloud metadata at 169.254.169.254), "this network", multicast, reserved and
// broadcast. 127/8 is the namespace's own loopback (the local table answers it first).
constexpr const char* blocked_ipv4[] = {
    "0.0.0.0/8",     "10.0.0.0/8",     "100.64.0.0/10", "169.254.0.0/16",
    "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4",   "240.0.0.0/4",
};

// A time limit for setting the network up; slirp4netns is ready in milliseconds.
constexpr std::chrono::seconds setup_limit{30};

struct fd_guard {
  int fd = -1;
  fd_guard() = default;
  explicit fd_guard(int f) : fd(f) {}
  fd_guard(fd_guard&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  fd_guard& operator=(fd_guard&& o) noexcept {
    reset();
    fd = std::exchange(o.fd, -1);
    return *this;
  }
  ~fd_guard() { reset(); }
  void reset() {
    if (fd >= 0) {
      ::close(std::exchange(fd, -1));
    }
  }
  int release() { return std::exchange(fd, -1); }
};

struct pipe_ends {
  fd_guard read, write;
};

result<pipe_ends> make_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    return make_error(std::error_code(errno, std::generic_category()), "network: pipe");
  }
  return pipe_ends{fd_guard(p[0]), fd_guard(p[1])};
}

// A child running beside the sandbox: its status arrives through `done` (expired at once when it
// has ended), `stop` asks process::run to end it.
struct companion {
  companion(asio::any_io_executor ex, std::string n)
      : name(std::move(n)), done(ex, clock_type::time_point::max()) {}
  std::string name;
  asio::cancellation_signal stop;
  std::optional<result<process::exit_status>> status;
  asio::steady_timer done;
  std::string output;  // its last lines, for error messages
};

std::shared_ptr<companion> start(asio::any_io_executor ex, process::options o,
                                 process::line_handler on_line = {}) {
  auto c = std::make_shared<companion>(ex, o.argv.empty() ? std::string() : o.argv.front());
  // Its last lines are kept even when they go on to `on_line`: bubblewrap's own error (before
  // the command runs) is what explains a sandbox gone during the network's set-up.
  auto keep = [c, on_line = std::move(on_line)](process::stream s, std::string_view line) {
    if (on_line) {
      on_line(s, line);
    }
    if (c->output.size() > 2000) {
      c->output.erase(0, c->output.size() - 1000);
    }
    c->output += c->output.empty() ? "" : "; ";
    c->output += line;
  };
  asio::co_spawn(ex, process::run(std::move(o), std::move(keep)),
                 asio::bind_cancellation_slot(
                     c->stop.slot(), [c](std::exception_ptr e, result<process::exit_status> r) {
                       c->status = e ? result<process::exit_status>(make_error(
                                           errc::internal, "supervising {} failed", c->name))
                                     : std::move(r);
                       c->done.expires_at(clock_type::time_point::min());
                     }));
  return c;
}

void stop(companion& c) {
  if (!c.status) {
    c.stop.emit(asio::cancellation_type::terminal);
  }
}

// Waits until `c` has ended. A cancellation of the caller meanwhile is passed on to it.
asio::awaitable<result<process::exit_status>> finish(companion& c) {
  while (!c.status) {
    co_await c.done.async_wait(use_tuple);
    if (!c.status) {
      stop(c);
    }
  }
  co_return *c.status;
}

// Reads `d` until `complete(text)`, unless `owner` ends first or the deadline passes (then an
// error saying `what` did not come).
template <class Complete>
asio::awaitable<result<std::string>> read_until(asio::posix::stream_descriptor& d, companion& owner,
                                                asio::steady_timer& deadline, std::string_view what,
                                                Complete complete) {
  using namespace asio::experimental::awaitable_operators;
  std::string text;
  std::array<char, 512> buf;
  for (;;) {
    if (owner.status) {
      const auto& st = *owner.status;
      co_return make_error(errc::unavailable, "{} ended before the {} ({}){}{}", owner.name, what,
                           st ? st->describe() : st.error().message,
                           owner.output.empty() ? "" : ": ", owner.output);
    }
    auto r = co_await (d.async_read_some(asio::buffer(buf), use_tuple) ||
                       owner.done.async_wait(use_tuple) || deadline.async_wait(use_tuple));
    if (r.index() == 0) {
      auto [ec, n] = std::get<0>(r);
      text.append(buf.data(), n);
      if (complete(text)) {
        co_return text;
      }
      if (ec) {
        co_return make_error(errc::unavailable, "no {} ({})", what,
                             ec == asio::error::eof ? "end of file" : ec.message());
      }
    } else if (r.index() == 2) {
      auto [ec] = std::get<2>(r);
      if (!ec) {
        co_return make_error(errc::timeout, "no {} after {} s", what, setup_limit.count());
      }
      co_return make_error(errc::canceled, "canceled");
    } else {
      auto [ec] = std::get<1>(r);
      if (ec == asio::error::operation_aborted && !owner.status) {
        co_return make_error(errc::canceled, "canceled");
      }
    }
  }
}

// Whether the loopback of `pid`'s network namespace is up with its address: the local route of
// 127.0.0.0/8 exists only then. bubblewrap sets it up itself (RTM_NEWADDR with NLM_F_EXCL, then
// RTM_NEWLINK) after it has reported the sandbox's pid; slirp4netns --configure also sets lo up,
// and when it comes first the kernel gives lo its 127.0.0.1 and bubblewrap's RTM_NEWADDR fails:
// the sandbox dies ("bwrap: loopback: Failed RTM_NEWADDR"). So slirp4netns waits for this.
bool loopback_ready(const std::string& pid) {
  int fd = ::open(("/proc/" + pid + "/net/fib_trie").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  // "|-- 127.0.0.0" then "/8 host LOCAL" in the Local table.
  auto at = text.find("|-- 127.0.0.0\n");
  return at != std::string::npos &&
         text.compare(text.find_first_not_of(' ', at + 14), 13, "/8 host LOCAL") == 0;
}

// Waits until bubblewrap's loopback set-up is done, unless the sandbox ends or the deadline
// passes first.
asio::awaitable<result<void>> wait_for_loopback(const std::string& pid, companion& owner,
                                                asio::steady_timer& deadline) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer poll(ex);
  for (int round = 0; !loopback_ready(pid); ++round) {
    if (owner.status) {
      co_return make_error(errc::unavailable, "the sandbox ended before its loopback was up");
    }
    if (deadline.expiry() <= clock_type::now()) {
      co_return make_error(errc::timeout, "the sandbox's loopback was not up after {} s",
                           setup_limit.count());
    }
    poll.expires_after(std::chrono::milliseconds(round < 100 ? 1 : 10));
    auto [ec] = co_await poll.async_wait(use_tuple);
    if (ec) {
      co_return make_error(errc::canceled, "canceled");
    }
  }
  co_return result<void>{};
}

// The absolute path of a program in sandbox_runner_env()'s PATH, or an error naming its package.
result<std::string> program(std::string_view name, std::string_view package) {
  auto found = process::find_program(name, sandbox_runner_env());
  if (found && ::access(found->c_str(), X_OK) == 0) {
    return found;
  }
  return make_error(errc::unavailable,
                    "{} is not installed (Debian package {}): the build's network needs it; "
                    "deploy/setup.sh installs it, or set BUILD_NETWORK=none",
                    name, package);
}

// Egress: bwrap waits on its block descriptor while slirp4netns and the routes are set up.
asio::awaitable<result<process::exit_status>> run_egress(sandbox_options so,
                                                         std::vector<std::string> command,
                                                         process::options o,
                                                         process::line_handler on_line) {
  // Cancellation is handled here (passed on to the children), not by exceptions.
  co_await asio::this_coro::throw_if_cancelled(false);
  auto ex = co_await asio::this_coro::executor;
  if (::geteuid() != 0) {
    // Unprivileged bwrap puts the namespace in a user namespace of its own, which slirp4netns and
    // ip cannot enter from here.
    co_return make_error(errc::unavailable,
                         "BUILD_NETWORK=egress needs a runner that is root (bubblewrap's network "
                         "namespace is then configured from outside); run as root or set "
                         "BUILD_NETWORK=none");
  }
  auto slirp = program(so.slirp4netns, "slirp4netns");
  auto nsenter = program("nsenter", "util-linux");
  auto ip = program("ip", "iproute2");
  for (const auto* p : {&slirp, &nsenter, &ip}) {
    if (!*p) {
      co_return p->error();
    }
  }

  auto info = make_pipe();
  auto block = make_pipe();
  auto resolv = make_pipe();
  auto ready = make_pipe();
  auto slirp_exit = make_pipe();
  auto batch = make_pipe();
  for (const auto* p : {&info, &block, &resolv, &ready, &slirp_exit, &batch}) {
    if (!*p) {
      co_return p->error();
    }
  }
  // Small enough for the pipe's buffer: written whole before anyone reads.
  constexpr std::string_view resolv_conf = "nameserver 10.0.2.3\n";
  auto routes = egress_route_batch(host_networks());
  if (::write(resolv->write.fd, resolv_conf.data(), resolv_conf.size()) !=
          static_cast<ssize_t>(resolv_conf.size()) ||
      routes.size() > 60000 ||
      ::write(batch->write.fd, routes.data(), routes.size()) !=
          static_cast<ssize_t>(routes.size())) {
    co_return make_error(std::error_code(errno, std::generic_category()),
                         "network: cannot fill a pipe");
  }
  resolv->write.reset();
  batch->write.reset();

  // Our ends of info and ready are read asynchronously; the children's ends stay open here until
  // the end (a close right after the spawn could come before the fork), so a dead writer is
  // noticed through its process, not through end of file.
  asio::posix::stream_descriptor info_r(ex, info->read.release());
  asio::posix::stream_descriptor ready_r(ex, ready->read.release());
  asio::steady_timer deadline(ex, setup_limit);

  o.argv = bwrap_argv(so, command);
  o.env = sandbox_runner_env();
  o.inherit_fds = {{info->write.fd, sandbox_fds::info},
                   {block->read.fd, sandbox_fds::block},
                   {resolv->read.fd, sandbox_fds::resolv}};
  auto grace = o.kill_grace;
  auto bw = start(ex, std::move(o), std::move(on_line));

  std::shared_ptr<companion> sl;
  auto set_up = [&]() -> asio::awaitable<result<void>> {
    auto text = co_await read_until(info_r, *bw, deadline, "sandbox pid from bubblewrap",
                                    [](const std::string& t) {
                                      boost::system::error_code ec;
                                      boost::json::parse(t, ec);
                                      return !ec;
                                    });
    if (!text) {
      co_return text.error();
    }
    auto doc = boost::json::parse(*text).as_object();
    const auto* pid_v = doc.if_contains("child-pid");
    if (pid_v == nullptr || !pid_v->is_int64() || pid_v->as_int64() <= 1) {
      co_return make_error(errc::internal, "bubblewrap reported no child-pid: {}", *text);
    }
    auto pid = std::to_string(pid_v->as_int64());
    if (auto lo = co_await wait_for_loopback(pid, *bw, deadline); !lo) {
      co_return lo.error();
    }

    process::options s;
    s.argv = {*slirp,
              "--configure",
              "--mtu=65520",
              "--disable-host-loopback",
              "--enable-sandbox",
              "--enable-seccomp",
              "--ready-fd=3",
              "--exit-fd=4",
              pid,
              tap_name};
    s.env = sandbox_runner_env();
    s.kill_grace = grace;
    s.inherit_fds = {{ready->write.fd, 3}, {slirp_exit->read.fd, 4}};
    sl = start(ex, std::move(s));
    auto up = co_await read_until(ready_r, *sl, deadline, "ready signal from slirp4netns",
                                  [](const std::string& t) { return !t.empty(); });
    if (!up) {
      co_return error{up.error().code, "slirp4netns: " + up.error().message};
    }

    process::options r;
    r.argv = {*nsenter, "--net=/proc/" + pid + "/ns/net", "--", *ip, "-batch", "/dev/fd/3"};
    r.env = sandbox_runner_env();
    r.timeout = setup_limit;
    r.inherit_fds = {{batch->read.fd, 3}};
    auto rt = start(ex, std::move(r));
    auto done = co_await finish(*rt);
    if (!done || !done->success()) {
      co_return make_error(errc::unavailable, "the sandbox's routes could not be set ({}){}{}",
                           done ? done->describe() : done.error().message,
                           rt->output.empty() ? "" : ": ", rt->output);
    }
    co_return result<void>{};
  };
  auto ok = co_await set_up();
  // bubblewrap ended by itself while its network was being set up (nsenter then finds no
  // namespace): its status and its own stderr are the cause, not the step that noticed.
  bool bwrap_ended = !ok && bw->status.has_value();
  auto cs = co_await asio::this_coro::cancellation_state;
  if (ok && cs.cancelled() == asio::cancellation_type::none) {
    // The network is closed: let the command start.
    if (::write(block->write.fd, "1", 1) != 1) {
      ok = make_error(std::error_code(errno, std::generic_category()), "unblock bubblewrap");
    }
  }
  if (!ok || cs.cancelled() != asio::cancellation_type::none) {
    // bwrap must not go on without its network: it is stopped while block is still open.
    stop(*bw);
  }
  auto status = co_await finish(*bw);
  if (sl) {
    // slirp4netns would outlive the namespace (it holds the tap device): exit-fd first, then
    // process::run's SIGTERM/SIGKILL to its group.
    slirp_exit->write.reset();
    stop(*sl);
    co_await finish(*sl);
  }
  // (Its status may arrive a little after the failed step: an exit code, not our signal.)
  bwrap_ended = bwrap_ended || (!ok && status && status->code >= 0);
  if (!ok && cs.cancelled() == asio::cancellation_type::none) {
    if (bwrap_ended) {
      co_return make_error(errc::unavailable,
                           "network: the sandbox ended before its network was set up: bubblewrap "
                           "{}{}{} (then: {})",
                           status ? status->describe() : status.error().message,
                           bw->output.empty() ? "" : ": ", bw->output, ok.error().message);
    }
    co_return error{ok.error().code, "network: " + ok.error().message};
  }
  co_return status;
}

}  // namespace

std::string_view to_string(network_mode m) noexcept {
  return m == network_mode::none ? "none" : "egress";
}

std::optional<network_mode> parse_network_mode(std::string_view s) noexcept {
  if (s == "egress") {
    return network_mode::egress;
  }
  if (s == "none") {
    return network_mode::none;
  }
  return std::nullopt;
}

std::vector<std::string> host_networks() {
  // Inside a blocked range already: a route of their own could only shadow slirp's network.
  std::vector<std::pair<uint32_t, uint32_t>> blocked;  // network, mask
  for (const char* n : blocked_ipv4) {
    std::string_view v(n);
    auto slash = v.find('/');
    in_addr a{};
    ::inet_pton(AF_INET, std::string(v.substr(0, slash)).c_str(), &a);
    int len = std::stoi(std::string(v.substr(slash + 1)));
    blocked.emplace_back(ntohl(a.s_addr), ~((1u << (32 - len)) - 1));
  }
  std::vector<std::string> nets;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    return nets;
  }
  for (auto* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_netmask == nullptr || (i->ifa_flags & IFF_LOOPBACK) ||
        i->ifa_addr->sa_family != AF_INET) {
      continue;  // IPv6 is unreachable as a whole
    }
    uint32_t addr = ntohl(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr);
    uint32_t mask = ntohl(reinterpret_cast<sockaddr_in*>(i->ifa_netmask)->sin_addr.s_addr);
    if (std::any_of(blocked.begin(), blocked.end(),
                    [addr](auto b) { return (addr & b.second) == b.first; })) {
      continue;
    }
    int prefix = __builtin_popcount(mask);
    // The address itself, and its subnet (the host's neighbours) unless implausibly wide.
    for (int len : {32, prefix}) {
      if (len < 8) {
        continue;
      }
      uint32_t m = len == 32 ? ~0u : ~((1u << (32 - len)) - 1);
      in_addr net{htonl(addr & m)};
      char text[INET_ADDRSTRLEN] = {};
      ::inet_ntop(AF_INET, &net, text, sizeof text);
      auto s = fmt::format("{}/{}", text, len);
      if (std::find(nets.begin(), nets.end(), s) == nets.end()) {
        nets.push_back(std::move(s));
      }
    }
  }
  ::freeifaddrs(list);
  return nets;
}

std::string egress_route_batch(const std::vector<std::string>& host_networks) {
  std::string b;
  for (const char* n : blocked_ipv4) {
    b += fmt::format("route add unreachable {}\n", n);
  }
  for (const auto& n : host_networks) {
    b += fmt::format("route add unreachable {}\n", n);
  }
  // The slirp network: only DNS (port 53 of the forwarder) passes; the gateway is the host.
  b += fmt::format("rule add pref 100 to {}/32 ipproto udp dport 53 lookup main\n", slirp_dns);
  b += fmt::format("rule add pref 101 to {}/32 ipproto tcp dport 53 lookup main\n", slirp_dns);
  b += fmt::format("rule add pref 102 to {} prohibit\n", slirp_network);
  // IPv6 off: slirp4netns runs without it, and no route leads anywhere (link-local included).
  b += fmt::format("route del fe80::/64 dev {}\n", tap_name);
  b += "route add unreachable fe80::/10\n";
  b += "route add unreachable ::/0\n";
  return b;
}

asio::awaitable<result<process::exit_status>> run_sandboxed(sandbox_options so,
                                                            std::vector<std::string> command,
                                                            process::options o,
                                                            process::line_handler on_line) {
  if (so.network == network_mode::none) {
    o.argv = bwrap_argv(so, command);
    o.env = sandbox_runner_env();
    co_return co_await process::run(std::move(o), std::move(on_line));
  }
  // Its own coroutine thread: run_egress turns off throw_if_cancelled for itself only.
  auto ex = co_await asio::this_coro::executor;
  co_return co_await asio::co_spawn(
      ex, run_egress(std::move(so), std::move(command), std::move(o), std::move(on_line)),
      asio::use_awaitable);
}

}  // namespace dp::runner
