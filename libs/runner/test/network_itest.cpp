// Real bubblewrap + slirp4netns: what a build can reach. Each attack is tried from inside the
// sandbox; nothing here sends a packet beyond this machine: a connect to a non-loopback address is
// made only after `ip route get` inside the sandbox has shown that its route is closed (on a
// sandbox that shares the host's network the script stops there, with exit code 99).
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio.hpp>

#include <filesystem>
#include <fstream>
#include <optional>

#include "dp/process/process.hpp"
#include "dp/runner/sandbox.hpp"
#include "dp/test/harness.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace dp::runner;

namespace {

struct ran {
  dp::result<dp::process::exit_status> status = dp::make_error(dp::errc::internal, "not run");
  std::vector<std::string> out;
  std::vector<std::string> err;
  std::string text() const {
    std::string t;
    for (const auto* v : {&out, &err}) {
      for (const auto& l : *v) {
        t += l + "\n";
      }
    }
    return t;
  }
};

// Shell helpers for the scripts. closed: the route to $1 (with the rest as `ip route get`
// selectors) leads nowhere, else stop with 99 before any packet is sent. try: connect to $1:$2
// only when closed, and print "<addr>:<port> <outcome>".
// clang-format off
constexpr const char* helpers = R"sh(
closed() {
  r=$(ip route get "$@" 2>&1)
  case "$r" in
    *"No route to host"*|*"Permission denied"*|*"Network is unreachable"*|unreachable*|prohibit*) return 0 ;;
  esac
  echo "OPEN $1: $r"; exit 99
}
outcome() {
  if (exec 3<>"/dev/tcp/$1/$2") 2>/tmp/connect-error; then echo "$1:$2 connected"
  else echo "$1:$2 $(tail -1 /tmp/connect-error | sed 's/.*: //')"; fi
}
try() { closed "$1" ipproto tcp dport "$2"; outcome "$1" "$2"; }
)sh";
// clang-format on

// Children of `parent` that the sandbox's set-up starts (the harness's redis-server is not one).
std::vector<pid_t> setup_children_of(pid_t parent) {
  std::vector<pid_t> kids;
  for (const auto& e : fs::directory_iterator("/proc")) {
    auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::ifstream f(e.path() / "stat");
    std::string stat;
    std::getline(f, stat);
    auto close = stat.rfind(')');
    if (close == std::string::npos) {
      continue;
    }
    std::istringstream rest(stat.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    auto open = stat.find('(');
    auto comm = stat.substr(open + 1, close - open - 1);
    if (ppid == parent &&
        (comm == "slirp4netns" || comm == "bwrap" || comm == "nsenter" || comm == "ip")) {
      kids.push_back(std::stoi(name));
    }
  }
  return kids;
}

class Network : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "the egress network needs a root runner";
    }
  }

  ran run(const std::string& script, network_mode mode = network_mode::egress,
          std::string slirp = "slirp4netns",
          std::function<void(std::string_view, asio::cancellation_signal&)> watch = {},
          std::optional<unsigned> uid = std::nullopt) {
    sandbox_options o;
    o.work_dir = work_.path();
    o.uid = uid;
    o.env = sandbox_env(phase::build, o.mount_point, {}).value();
    o.network = mode;
    o.slirp4netns = std::move(slirp);
    dp::process::options p;
    p.timeout = std::chrono::seconds(60);
    asio::io_context ioc;
    asio::cancellation_signal cancel;
    ran r;
    asio::co_spawn(
        ioc,
        run_sandboxed(std::move(o), {"bash", "-c", std::string(helpers) + script}, std::move(p),
                      [&](dp::process::stream s, std::string_view l) {
                        (s == dp::process::stream::out ? r.out : r.err).emplace_back(l);
                        if (watch) {
                          watch(l, cancel);
                        }
                      }),
        asio::bind_cancellation_slot(
            cancel.slot(), [&](std::exception_ptr e, dp::result<dp::process::exit_status> s) {
              ASSERT_FALSE(e);
              r.status = std::move(s);
            }));
    ioc.run();
    // Whatever ran beside the sandbox (slirp4netns, nsenter) has been reaped.
    EXPECT_EQ(setup_children_of(::getpid()), std::vector<pid_t>{});
    return r;
  }

  dp::test::temp_dir work_{"dp-network"};
};

// A TCP listener of the test on the host's loopback.
struct loopback_listener {
  loopback_listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
    }
    port = ntohs(a.sin_port);
  }
  ~loopback_listener() { ::close(fd); }
  // Whether anyone has connected (the queue is non-blocking).
  bool reached() const {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) {
      ::close(c);
      return true;
    }
    return false;
  }
  int fd;
  uint16_t port = 0;
};

TEST_F(Network, HostLoopbackListenerIsUnreachable) {
  loopback_listener l;
  // Directly, and through slirp's alias of the host (10.0.2.2, "host loopback").
  auto r = run(fmt::format("outcome 127.0.0.1 {0}; try 10.0.2.2 {0}", l.port));
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.out, (std::vector<std::string>{fmt::format("127.0.0.1:{} Connection refused", l.port),
                                             fmt::format("10.0.2.2:{} Permission denied", l.port)}))
      << r.text();
  EXPECT_FALSE(l.reached());
}

TEST_F(Network, HarnessRedisIsUnreachable) {
  dp::test::redis_server redis;
  auto r = run(fmt::format(
      "(exec 3<>/dev/tcp/127.0.0.1/{0} && printf 'PING\\r\\n' >&3 && read -t 5 l <&3 && "
      "echo \"reply $l\") 2>/dev/null || echo unreachable",
      redis.port()));
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.out, (std::vector<std::string>{"unreachable"})) << r.text();
}

TEST_F(Network, ProcNetShowsNoSocketOfTheHost) {
  loopback_listener l;
  dp::test::redis_server redis;
  // Every socket in the namespace: on the host's network there would be at least these two.
  auto r =
      run("cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 /proc/net/unix | "
          "grep -vc -e '^ *sl ' -e '^Num '");
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.out, (std::vector<std::string>{"0"})) << r.text();
}

TEST_F(Network, AbstractUnixSocketOfTheHostIsUnreachable) {
  // Abstract names belong to the network namespace: a new one sees none of the host's.
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  auto name = "dp-network-test-" + std::to_string(::getpid());
  std::memcpy(a.sun_path + 1, name.data(), name.size());
  socklen_t len = offsetof(sockaddr_un, sun_path) + 1 + name.size();
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  auto r = run(
      // python3 connects to exactly this name (node did not reach it even on the host network).
      fmt::format("python3 -c \"import socket, errno\n"
                  "try:\n"
                  "  socket.socket(socket.AF_UNIX).connect('\\0{}'); print('connected')\n"
                  "except OSError as e: print(errno.errorcode[e.errno])\"",
                  name));
  int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(fd);
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.out, (std::vector<std::string>{"ECONNREFUSED"})) << r.text();
  EXPECT_LT(c, 0) << "the host's abstract socket was reached";
  if (c >= 0) {
    ::close(c);
  }
}

TEST_F(Network, PrivateLinkLocalAndCgnatRangesFailAtOnce) {
  // Cloud metadata, the three RFC 1918 ranges, CGNAT, "this network", and IPv6 (global and
  // link-local): each refused by a route inside the namespace, so nothing leaves the machine.
  auto r = run(
      "for a in 169.254.169.254 10.1.2.3 172.16.0.1 192.168.1.1 100.64.0.1 0.1.2.3 2001:db8::1; "
      "do try $a 80; done; closed fe80::1 oif tap0 && outcome fe80::1%tap0 80; "
      "ip route get 169.254.169.254 2>&1");
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.out, (std::vector<std::string>{
                       "169.254.169.254:80 No route to host", "10.1.2.3:80 No route to host",
                       "172.16.0.1:80 No route to host", "192.168.1.1:80 No route to host",
                       "100.64.0.1:80 No route to host", "0.1.2.3:80 No route to host",
                       "2001:db8::1:80 No route to host", "fe80::1%tap0:80 Network is unreachable",
                       "RTNETLINK answers: No route to host"}))
      << r.text();
}

TEST_F(Network, HostOwnAddressesFailAtOnce) {
  std::vector<std::string> addrs;
  ifaddrs* list = nullptr;
  ASSERT_EQ(::getifaddrs(&list), 0);
  for (auto* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK) ||
        (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6)) {
      continue;
    }
    char text[INET6_ADDRSTRLEN] = {};
    const void* raw =
        i->ifa_addr->sa_family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr)
            : &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr;
    ::inet_ntop(i->ifa_addr->sa_family, raw, text, sizeof text);
    if (std::string_view(text).starts_with("fe80:")) {
      continue;  // link-local: covered above, and meaningless without an interface
    }
    addrs.emplace_back(text);
  }
  ::freeifaddrs(list);
  if (addrs.empty()) {
    GTEST_SKIP() << "the host has no address but loopback";
  }
  std::string script;
  std::vector<std::string> want;
  for (const auto& a : addrs) {
    script += fmt::format("try {} 22; ", a);
    want.push_back(fmt::format("{}:22 No route to host", a));
  }
  auto r = run(script);
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.out, want) << r.text();
}

TEST_F(Network, DnsForwarderTakesOnlyPort53) {
  // slirp forwards any port of its DNS address to the host's resolver: only 53 may pass.
  auto r =
      run("cat /etc/resolv.conf; ip route get 10.0.2.3 ipproto udp dport 53 | head -1 | "
          "cut -d' ' -f1-3; try 10.0.2.3 6379; try 10.0.2.3 80; try 10.0.2.7 80");
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.out,
            (std::vector<std::string>{
                "nameserver 10.0.2.3", "10.0.2.3 dev tap0", "10.0.2.3:6379 Permission denied",
                "10.0.2.3:80 Permission denied", "10.0.2.7:80 Permission denied"}))
      << r.text();
}

TEST_F(Network, TheBuildUserReadsTheSandboxResolvConf) {
  // A build of a root runner runs as a uid of its own: DNS must work for it too.
  const unsigned uid = 231236;
  ASSERT_EQ(::chown(work_.path().c_str(), uid, uid), 0);
  ::chmod(work_.path().c_str(), 0755);  // bwrap (root, no capabilities) must enter it
  auto r = run("id -u; cat /etc/resolv.conf", network_mode::egress, "slirp4netns", {}, uid);
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.out, (std::vector<std::string>{std::to_string(uid), "nameserver 10.0.2.3"}))
      << r.text();
}

TEST_F(Network, NoneHasOnlyALoopback) {
  auto r =
      run("ip -o link | cut -d' ' -f2; try 198.51.100.1 443; echo x > /dev/udp/127.0.0.1/9 && "
          "echo own-loopback",
          network_mode::none);
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.out, (std::vector<std::string>{"lo:", "198.51.100.1:443 Network is unreachable",
                                             "own-loopback"}))
      << r.text();
}

TEST_F(Network, TheCommandGetsNoDescriptorOfTheSetUp) {
  // bwrap's info/block/resolv.conf descriptors and slirp's stay outside.
  auto r = run("ls /proc/self/fd | tr '\\n' ' '");
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.out, (std::vector<std::string>{"0 1 2 3 "})) << r.text();  // 3: ls's directory
}

TEST_F(Network, CancelStopsTheSandboxAndSlirp) {
  auto r = run("echo started; sleep 100", network_mode::egress, "slirp4netns",
               [](std::string_view line, asio::cancellation_signal& cancel) {
                 if (line == "started") {
                   cancel.emit(asio::cancellation_type::terminal);
                 }
               });
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_TRUE(r.status->canceled);
  // run() checked that no child is left.
}

TEST_F(Network, MissingSlirpIsAClearInfrastructureError) {
  auto r = run("touch /build/ran", network_mode::egress, "/nonexistent/slirp4netns");
  ASSERT_FALSE(r.status);
  EXPECT_TRUE(r.status.error().is(dp::errc::unavailable)) << r.status.error().message;
  EXPECT_NE(r.status.error().message.find("Debian package slirp4netns"), std::string::npos)
      << r.status.error().message;
  EXPECT_FALSE(fs::exists(work_.path() / "ran"));
}

}  // namespace
