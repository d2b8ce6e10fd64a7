// The Docker Engine of the ctest fixture docker_engine (tests/harness/docker-engine.sh): a dockerd
// of the tests' own, whose socket a test gets in DOCKER_SOCKET (docker() gives the CLI
// DOCKER_HOST), with the build-runner image built from this tree's binary. Where the engine cannot
// run, the fixture says why and the tests skip with that reason:
//   auto engine = dp::test::docker_engine::from_environment();
//   if (!engine.usable()) GTEST_SKIP() << engine.skip_reason();
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dp/test/harness.hpp"

namespace dp::test {

class docker_engine {
 public:
  // The image docker-engine.sh builds (target build-runner-prebuilt of deploy/docker/Dockerfile).
  static constexpr const char* build_runner_image = "deploy-platform-test/build-runner:asan";

  static docker_engine from_environment() {
    docker_engine e;
    const char* socket = std::getenv("DOCKER_SOCKET");
    if (!socket || !*socket) {
      e.skip_ = "DOCKER_SOCKET is not set: run this test through ctest (fixture docker_engine)";
      return e;
    }
    e.socket_ = socket;
    auto skip = std::filesystem::path(e.socket_).parent_path() / "skip";
    if (std::ifstream in(skip); in) {
      std::stringstream text;
      text << in.rdbuf();
      e.skip_ = "no Docker Engine here: " + text.str();
    } else if (!std::filesystem::exists(e.socket_)) {
      e.skip_ = "no Docker Engine socket at " + e.socket_ + " (did docker_engine_start fail?)";
    }
    return e;
  }

  bool usable() const { return skip_.empty(); }
  const std::string& skip_reason() const { return skip_; }
  const std::string& socket() const { return socket_; }

  // The docker CLI against this engine.
  run_result docker(std::vector<std::string> args,
                    std::chrono::milliseconds timeout = std::chrono::seconds(120)) const {
    args.insert(args.begin(), "docker");
    return run(std::move(args), {{"DOCKER_HOST", "unix://" + socket_}}, {}, timeout);
  }

  // Ids of the containers, running or not, that carry `label` ("key" or "key=value").
  std::vector<std::string> containers(const std::string& label) const {
    return lines(docker({"ps", "--all", "--quiet", "--no-trunc", "--filter", "label=" + label}));
  }
  std::vector<std::string> volumes() const { return lines(docker({"volume", "ls", "--quiet"})); }

 private:
  static std::vector<std::string> lines(const run_result& r) {
    std::vector<std::string> out;
    std::istringstream in(r.output);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) {
        out.push_back(line);
      }
    }
    if (r.exit_code != 0) {
      out.push_back("docker failed: " + r.output);
    }
    return out;
  }

  std::string socket_;
  std::string skip_;
};

}  // namespace dp::test
