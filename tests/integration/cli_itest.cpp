// Every binary answers --help and --version, and a bad setting stops it at start with one line
// naming the setting and exit code 2.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace {

struct run_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `command` through /bin/sh with a clean environment plus `env` (VAR=value ...).
run_result run(const std::string& env, const std::string& command) {
  char err_path[] = "/tmp/dp-cli-XXXXXX";
  int fd = mkstemp(err_path);
  close(fd);
  std::string full = "env -i PATH=/usr/bin:/bin " + env + " " + command + " 2>" + err_path;
  run_result r;
  FILE* p = popen(full.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) {
    r.out.append(buf.data(), n);
  }
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream f(err_path);
  std::stringstream ss;
  ss << f.rdbuf();
  r.err = ss.str();
  std::remove(err_path);
  return r;
}

const char* const binaries[] = {API_SERVER_BIN, BUILD_RUNNER_BIN, PROXY_BIN};

TEST(cli, help_lists_settings_with_defaults) {
  for (const char* bin : binaries) {
    auto r = run("", std::string(bin) + " --help");
    EXPECT_EQ(r.exit_code, 0) << bin;
    EXPECT_NE(r.out.find("REDIS_URL, --redis-url"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("STORAGE_URL, --storage-url"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("LOG_LEVEL, --log-level <value>"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(default: "), std::string::npos) << r.out;
    EXPECT_TRUE(r.err.empty()) << r.err;
  }
}

TEST(cli, version) {
  for (const char* bin : binaries) {
    auto r = run("", std::string(bin) + " --version");
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find(DP_VERSION), std::string::npos) << r.out;
  }
}

TEST(cli, bad_settings_exit_2_with_one_line) {
  struct bad {
    const char* env;
    const char* name;
  };
  const bad cases[] = {{"REDIS_URL='not a url'", "REDIS_URL"},
                       {"STORAGE_URL=ftp://x", "STORAGE_URL"},
                       {"LOG_LEVEL=loud", "LOG_LEVEL"},
                       {"REDIS_URL=redis://127.0.0.1:70000", "REDIS_URL"}};
  for (const char* bin : binaries) {
    for (const auto& c : cases) {
      auto r = run(c.env, std::string(bin) + " worker");
      EXPECT_EQ(r.exit_code, 2) << bin << " " << c.env << ": " << r.err;
      EXPECT_NE(r.err.find(c.name), std::string::npos) << r.err;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
  }
  auto api = run("API_LISTEN=nowhere:xx", API_SERVER_BIN);
  EXPECT_EQ(api.exit_code, 2);
  EXPECT_NE(api.err.find("API_LISTEN='nowhere:xx'"), std::string::npos) << api.err;
  auto proxy = run("PROXY_LISTEN=127.0.0.1", PROXY_BIN);
  EXPECT_EQ(proxy.exit_code, 2);
  EXPECT_NE(proxy.err.find("PROXY_LISTEN"), std::string::npos) << proxy.err;
  auto runner = run("WORKER_CONCURRENCY=0", std::string(BUILD_RUNNER_BIN) + " worker");
  EXPECT_EQ(runner.exit_code, 2);
  EXPECT_NE(runner.err.find("WORKER_CONCURRENCY"), std::string::npos) << runner.err;
  // Checked before the worker connects to anything (this Redis port is closed).
  auto bundle = run("REDIS_URL=redis://127.0.0.1:1 ACME_CA_BUNDLE=/nonexistent/ca.pem",
                    std::string(BUILD_RUNNER_BIN) + " worker");
  EXPECT_EQ(bundle.exit_code, 2);
  EXPECT_NE(bundle.err.find("ACME_CA_BUNDLE='/nonexistent/ca.pem'"), std::string::npos)
      << bundle.err;
  EXPECT_EQ(std::count(bundle.err.begin(), bundle.err.end(), '\n'), 1) << bundle.err;
  auto dns = run("DNS_RESOLVER='[::1]:99999'", API_SERVER_BIN);
  EXPECT_EQ(dns.exit_code, 2);
  EXPECT_NE(dns.err.find("DNS_RESOLVER='[::1]:99999'"), std::string::npos) << dns.err;
  EXPECT_NE(dns.err.find("[::1]:port"), std::string::npos) << dns.err;
  EXPECT_EQ(std::count(dns.err.begin(), dns.err.end(), '\n'), 1) << dns.err;
  auto flag = run("", std::string(API_SERVER_BIN) + " --api-listen nowhere:xx");
  EXPECT_EQ(flag.exit_code, 2);
  EXPECT_NE(flag.err.find("--api-listen='nowhere:xx'"), std::string::npos) << flag.err;
}

TEST(cli, build_runner_needs_a_command) {
  auto r = run("", BUILD_RUNNER_BIN);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("build, worker or sweep"), std::string::npos) << r.err;
}

}  // namespace
