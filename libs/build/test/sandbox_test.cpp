#include "dp/build/sandbox.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using namespace dp::build;

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

  auto build = sandbox_env(phase::build, "/build", {});
  ASSERT_TRUE(build);
  EXPECT_EQ(build->at("NODE_ENV"), "production");
  auto own = sandbox_env(phase::build, "/build", {{"NODE_ENV", "staging"}});
  ASSERT_TRUE(own);
  EXPECT_EQ(own->at("NODE_ENV"), "staging");
}

TEST(SandboxEnv, RefusesReservedAndInvalidNames) {
  for (const char* name : {"PATH", "HOME", "TMPDIR", "npm_config_cache", "NPM_CONFIG_CACHE", "",
                           "1ABC", "A-B", "A=B", "A B"}) {
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
  EXPECT_FALSE(has_seq(a, {"--unshare-net"}));
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

}  // namespace
