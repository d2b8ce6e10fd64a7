// build-runner: `build` runs one deployment (the build container's entrypoint); `worker` consumes
// the build queue and launches builds. Wiring only; the logic lives in libs/.
#include <boost/asio/io_context.hpp>

#include "dp/core/config.hpp"
#include "dp/core/id.hpp"
#include "dp/core/log.hpp"
#include "dp/core/shutdown.hpp"
#include "dp/settings/settings.hpp"

extern char** environ;

namespace {

struct runner_config {
  dp::settings::common common;
  // build mode
  std::string deployment_id;
  std::string job_file;
  std::string git_repository_url;  // the original design's GIT_REPOSITORY_URL
  std::string project_id;          // the original design's PROJECT_ID (a project name)
  std::string sandbox = "bwrap";
  std::vector<std::string> allowed_git_protocols;
  int64_t build_timeout_s = 900;
  // worker mode
  std::string launcher = "process";
  int64_t worker_concurrency = 2;
  int64_t lease_ttl_s = 30;
  int64_t max_attempts = 2;
  std::string build_image;
};

}  // namespace

int main(int argc, char** argv) {
  runner_config cfg;
  dp::config::parser parser("build-runner",
                            "runs one build (build) or consumes the build queue (worker)",
                            "build [--deployment <id> | --job <file.json>] | worker");
  dp::settings::add_common(parser, cfg.common, {.redis_optional = true});
  parser.add({.env = "DEPLOYMENT_ID",
              .flag = "--deployment",
              .help = "build: read this deployment's job from Redis",
              .apply = [&](std::string_view v) -> std::optional<std::string> {
                if (!v.empty() && !dp::is_deployment_id(v)) {
                  return "not a deployment id (26 lowercase base32 characters)";
                }
                cfg.deployment_id = std::string(v);
                return std::nullopt;
              }});
  parser.add({.flag = "--job",
              .help = "build: read the job message from this JSON file",
              .apply = [&](std::string_view v) -> std::optional<std::string> {
                cfg.job_file = std::string(v);
                return std::nullopt;
              }});
  parser.add_string("GIT_REPOSITORY_URL", &cfg.git_repository_url, "",
                    "build: the repository to build (original design's variable)");
  parser.add(
      {.env = "PROJECT_ID",
       .help = "build: the project's name, with GIT_REPOSITORY_URL (original design's variable)",
       .apply = [&](std::string_view v) -> std::optional<std::string> {
         if (!v.empty() && !dp::settings::is_domain(v)) {
           return "must be a DNS label: lowercase letters, digits and '-'";
         }
         cfg.project_id = std::string(v);
         return std::nullopt;
       }});
  parser.add_choice(
      "SANDBOX", &cfg.sandbox, "bwrap", {"bwrap", "none"},
      "build: run install and build under bubblewrap, or unsandboxed inside a container");
  parser.add_list("ALLOWED_GIT_PROTOCOLS", &cfg.allowed_git_protocols, "https",
                  "Git URL schemes a build may clone", {"https", "http", "file"});
  parser.add_int("BUILD_TIMEOUT_S", &cfg.build_timeout_s, 900, 10, 86400,
                 "Wall-clock limit of one build, in seconds");
  parser.add_choice("LAUNCHER", &cfg.launcher, "process", {"process", "docker", "ecs"},
                    "worker: how builds are launched");
  parser.add_int("WORKER_CONCURRENCY", &cfg.worker_concurrency, 2, 1, 256,
                 "worker: builds run at once");
  parser.add_int("LEASE_TTL_S", &cfg.lease_ttl_s, 30, 5, 3600,
                 "worker: a job whose lease is not refreshed for this long is re-queued");
  parser.add_int("MAX_ATTEMPTS", &cfg.max_attempts, 2, 1, 10, "worker: attempts per job");
  parser.add_string("BUILD_IMAGE", &cfg.build_image, "deploy-platform/build-runner:latest",
                    "worker (docker, ecs): the build container image");
  auto outcome = parser.parse(argc, argv, dp::config::environment_from(environ));
  if (!outcome.run) {
    return outcome.exit_code;
  }
  const auto& args = parser.positionals();
  if (args.size() != 1 || (args[0] != "build" && args[0] != "worker")) {
    std::fprintf(stderr, "build-runner: expected one command, build or worker (see --help)\n");
    return 2;
  }
  dp::settings::configure_logging(cfg.common.log, "build-runner");
  if (args[0] == "worker" && !cfg.common.redis_set) {
    std::fprintf(stderr, "build-runner: invalid REDIS_URL='': the worker needs Redis\n");
    return 2;
  }

  boost::asio::io_context ioc;
  dp::on_shutdown_signal(ioc, [&](int) { ioc.stop(); });
  dp::log::info("build-runner starting", {{"mode", args[0]}});
  ioc.run();
  return 0;
}
