#include "dp/runner/sandbox.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

using namespace dp::runner;

namespace {

bool has_seq(const std::vector<std::string>& v, std::vector<std::string> seq) {
  return std::search(v.begin(), v.end(), seq.begin(), seq.end()) != v.end();
}

TEST(SandboxEnv, BuiltFromScratchWithPhaseRules) {
  auto install = sandbox_env(phase::install, "/build", {{"VITE_API", "https://api"}});
  ASSERT_TRUE(install);
  EXPECT_EQ(install->at("HOME"), "/build/home");
  EXPECT_EQ(install->at("CI"), "1");
  EXPECT_EQ(install->at("npm_config_cache"), "/build/.npm");
  EXPECT_EQ(install->at("VITE_API"), "https://api");
  EXPECT_EQ(install->count("NODE_ENV"), 0u);  // devDependencies must be installed
  // corepack keeps what it fetches, and the shims of pnpm and yarn, in the work directory.
  EXPECT_EQ(install->at("COREPACK_HOME"), "/build/.corepack");
  EXPECT_TRUE(install->at("PATH").starts_with("/build/.corepack/bin:"));
  EXPECT_EQ(install->at("COREPACK_INTEGRITY_KEYS"), "0");
  // Node's fetch trusts the system's CA bundle too, where there is one.
  if (std::filesystem::is_regular_file("/etc/ssl/certs/ca-certificates.crt")) {
    EXPECT_EQ(install->at("NODE_EXTRA_CA_CERTS"), "/etc/ssl/certs/ca-certificates.crt");
  }

  auto build = sandbox_env(phase::build, "/build", {});
  ASSERT_TRUE(build);
  EXPECT_EQ(build->at("NODE_ENV"), "production");
  auto own = sandbox_env(phase::build, "/build", {{"NODE_ENV", "staging"}});
  ASSERT_TRUE(own);
  EXPECT_EQ(own->at("NODE_ENV"), "staging");
}

TEST(SandboxEnv, RefusesReservedAndInvalidNames) {
  for (const char* name : {"PATH", "HOME", "TMPDIR", "npm_config_cache", "NPM_CONFIG_CACHE",
                           "COREPACK_HOME", "", "1ABC", "A-B", "A=B", "A B"}) {
    auto r = sandbox_env(phase::build, "/build", {{name, "x"}});
    EXPECT_FALSE(r) << name;
  }
  auto nul = sandbox_env(phase::build, "/build", {{"A", std::string("x\0y", 3)}});
  EXPECT_FALSE(nul);
}

TEST(BwrapArgv, IsolatesAndClearsTheEnvironment) {
  sandbox_options o;
  o.work_dir = "/var/work/42";
  o.cwd = "/build/repo";
  o.env = {{"HOME", "/build/home"}, {"PATH", "/usr/bin"}};
  auto a = bwrap_argv(o, {"npm", "ci"});
  EXPECT_EQ(a.front(), "bwrap");
  for (const char* flag : {"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
                           "--new-session", "--clearenv"}) {
    EXPECT_TRUE(has_seq(a, {flag})) << flag;
  }
  // Its own network namespace; egress (the default) waits for its set-up and reads slirp's DNS.
  EXPECT_TRUE(has_seq(a, {"--unshare-net"}));
  EXPECT_TRUE(has_seq(a, {"--info-fd", "3", "--block-fd", "4"}));
  EXPECT_TRUE(has_seq(a, {"--perms", "0644", "--ro-bind-data", "5", "/etc/resolv.conf"}));
  EXPECT_FALSE(has_seq(a, {"--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"}));
  EXPECT_TRUE(has_seq(a, {"--cap-drop", "ALL"}));
  EXPECT_TRUE(has_seq(a, {"--ro-bind", "/usr", "/usr"}));
  EXPECT_TRUE(has_seq(a, {"--tmpfs", "/tmp"}));
  EXPECT_TRUE(has_seq(a, {"--remount-ro", "/"}));
  EXPECT_TRUE(has_seq(a, {"--bind", "/var/work/42", "/build"}));
  EXPECT_TRUE(has_seq(a, {"--chdir", "/build/repo"}));
  EXPECT_TRUE(has_seq(a, {"--setenv", "HOME", "/build/home"}));
  EXPECT_TRUE(has_seq(a, {"--", "npm", "ci"}));
  EXPECT_FALSE(has_seq(a, {"/root"}));
  EXPECT_FALSE(has_seq(a, {"--ro-bind", "/etc", "/etc"}));
  // The environment is applied after --clearenv.
  auto clear = std::find(a.begin(), a.end(), "--clearenv");
  auto setenv = std::find(a.begin(), a.end(), "--setenv");
  EXPECT_LT(clear, setenv);
}

TEST(BwrapArgv, NetworkNoneHasNoSetUpDescriptors) {
  sandbox_options o;
  o.work_dir = "/var/work/42";
  o.network = network_mode::none;
  auto a = bwrap_argv(o, {"true"});
  EXPECT_TRUE(has_seq(a, {"--unshare-net"}));
  EXPECT_FALSE(has_seq(a, {"--info-fd"}));
  EXPECT_FALSE(has_seq(a, {"--block-fd"}));
  EXPECT_TRUE(has_seq(a, {"--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"}));
}

TEST(NetworkMode, ParsesItsTwoNames) {
  EXPECT_EQ(parse_network_mode("egress"), network_mode::egress);
  EXPECT_EQ(parse_network_mode("none"), network_mode::none);
  EXPECT_EQ(parse_network_mode("host"), std::nullopt);
  EXPECT_EQ(to_string(network_mode::none), "none");
}

TEST(EgressRoutes, CloseEveryNonPublicRangeAndTheHost) {
  auto b = egress_route_batch({"192.0.2.2/32", "192.0.2.0/24"});
  for (const char* line :
       {"route add unreachable 10.0.0.0/8\n", "route add unreachable 172.16.0.0/12\n",
        "route add unreachable 192.168.0.0/16\n", "route add unreachable 169.254.0.0/16\n",
        "route add unreachable 100.64.0.0/10\n", "route add unreachable 0.0.0.0/8\n",
        "route add unreachable 224.0.0.0/4\n", "route add unreachable 240.0.0.0/4\n",
        "route add unreachable 192.0.2.2/32\n", "route add unreachable 192.0.2.0/24\n",
        "rule add pref 100 to 10.0.2.3/32 ipproto udp dport 53 lookup main\n",
        "rule add pref 101 to 10.0.2.3/32 ipproto tcp dport 53 lookup main\n",
        "rule add pref 102 to 10.0.2.0/24 prohibit\n", "route add unreachable fe80::/10\n",
        "route add unreachable ::/0\n"}) {
    EXPECT_NE(b.find(line), std::string::npos) << line;
  }
}

TEST(EgressRoutes, HostNetworksSkipLoopbackAndBlockedRanges) {
  for (const auto& n : host_networks()) {
    EXPECT_FALSE(n.starts_with("127.")) << n;
    EXPECT_FALSE(n.starts_with("10.")) << n;  // inside 10/8 already; could shadow slirp's /24
    EXPECT_NE(n.find('/'), std::string::npos) << n;
  }
}

}  // namespace
