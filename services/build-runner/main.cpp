// build-runner: `build` runs one deployment (the build container's entrypoint); `worker` consumes
// the build queue and launches builds. Wiring only; the logic lives in libs/.
#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

#include "dp/core/config.hpp"
#include "dp/core/id.hpp"
#include "dp/core/log.hpp"
#include "dp/proto/types.hpp"
#include "dp/runner/build_mode.hpp"
#include "dp/runner/sandbox.hpp"
#include "dp/runner/sweep.hpp"
#include "dp/settings/settings.hpp"
#include "dp/storage/from_settings.hpp"
#include "worker_mode.hpp"

extern char** environ;

namespace {

// Bad input: one line on stderr, exit 2.
int bad_input(std::string_view what) {
  std::fprintf(stderr, "build-runner: %.*s\n", static_cast<int>(what.size()), what.data());
  return dp::settings::exit_misconfigured;
}

// `sweep`: the cgroups and work directories (under TMPDIR) of runners that are gone, killed and
// removed; one stdout line per thing removed, one stderr line per failure (exit 1).
int run_sweep() {
  std::error_code ec;
  auto root = std::filesystem::temp_directory_path(ec);
  dp::runner::sweep_options o;
  if (!ec) {
    o.work_roots.push_back(root);
  }
  auto report = dp::runner::sweep_stale_builds(o);
  for (const auto& r : report.removed) {
    std::printf("removed %s\n", r.c_str());
  }
  for (const auto& e : report.errors) {
    std::fprintf(stderr, "build-runner: sweep: %s\n", e.c_str());
  }
  return report.errors.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  dp::settings::common common;
  dp::settings::build build;
  dp::runner::build_input input;
  dp::settings::worker_settings worker;
  dp::config::parser parser("build-runner",
                            "runs one build (build), consumes the build queue (worker) or removes "
                            "what dead runners left behind (sweep)",
                            "build [--deployment <id> | --job <file.json>] | worker | sweep");
  dp::settings::add_common(parser, common, {.redis_optional = true});
  dp::settings::add_build(parser, build, {.limits = true});
  parser.add({.env = "DEPLOYMENT_ID",
              .flag = "--deployment",
              .help = "build: read this deployment's job from Redis",
              .apply = [&](std::string_view v) -> std::optional<std::string> {
                if (!v.empty() && !dp::is_deployment_id(v)) {
                  return "not a deployment id (26 lowercase base32 characters)";
                }
                input.deployment_id = std::string(v);
                return std::nullopt;
              }});
  parser.add({.flag = "--job",
              .help = "build: read the job message from this JSON file",
              .apply = [&](std::string_view v) -> std::optional<std::string> {
                input.job_file = std::string(v);
                return std::nullopt;
              }});
  parser.add_string("GIT_REPOSITORY_URL", &input.git_repository_url, "",
                    "build: the repository to build (original design's variable)");
  parser.add(
      {.env = "PROJECT_ID",
       .help = "build: the project's name, with GIT_REPOSITORY_URL (original design's variable)",
       .apply = [&](std::string_view v) -> std::optional<std::string> {
         if (!v.empty() && !dp::proto::is_project_name(v)) {
           return "must be a project name: 1 to 54 of [a-z0-9-], not starting or ending with '-'";
         }
         input.project_id = std::string(v);
         return std::nullopt;
       }});
  dp::settings::add_worker_settings(parser, worker);
  dp::settings::retention retention;
  dp::settings::add_retention(parser, retention, true);
  dp::settings::acme acme;
  dp::settings::add_acme(parser, acme);
  std::string platform_key_hex;
  dp::settings::add_platform_key(parser, &platform_key_hex);
  auto outcome = parser.parse(argc, argv, dp::config::environment_from(environ));
  if (!outcome.run) {
    return outcome.exit_code;
  }
  const auto& args = parser.positionals();
  if (args.size() != 1 || (args[0] != "build" && args[0] != "worker" && args[0] != "sweep")) {
    return bad_input("expected one command, build, worker or sweep (see --help)");
  }
  dp::settings::configure_logging(common.log, "build-runner");
  if (args[0] == "sweep") {
    return run_sweep();
  }
  if (args[0] == "worker") {
    if (!common.redis_set) {
      return bad_input("invalid REDIS_URL='': the worker needs Redis");
    }
    // The process launcher runs this same binary's `build` mode.
    char self[4096] = {};
    auto n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    return build_runner::run_worker(common, build, worker, retention, acme, platform_key_hex,
                                    n > 0 ? std::string(self, n) : argv[0]);
  }

  auto job = dp::runner::job_from_input(input, build.allowed_git_protocols);
  if (!job) {
    return bad_input(job.error().message);
  }
  dp::runner::build_mode_options opts;
  opts.input = input;
  opts.runner.allowed_git_protocols = build.allowed_git_protocols;
  opts.runner.sandbox = build.sandbox == "bwrap";
  opts.runner.network = *dp::runner::parse_network_mode(build.network);
  opts.runner.timeout = std::chrono::seconds(build.timeout_s);
  opts.runner.memory_bytes = static_cast<uint64_t>(build.memory_mb) << 20;
  opts.runner.disk_bytes = static_cast<uint64_t>(build.disk_mb) << 20;
  opts.runner.pids_max = static_cast<uint64_t>(build.pids_max);
  opts.runner.cache = {.max_bytes = static_cast<uint64_t>(build.cache_mb) << 20,
                       .max_age = std::chrono::hours(24 * build.cache_days),
                       .local_dir = build.cache_dir,
                       .local_max_bytes = static_cast<uint64_t>(build.cache_local_mb) << 20};
  opts.runner.go_live = build.go_live == "runner";
  opts.runner.compress.enabled = build.compress;
  if (common.redis_set) {
    opts.redis = dp::redis::options{.url = common.redis};
  }
  opts.key_prefix = common.key_prefix;
  opts.json_logs = common.log.format == "json";

  dp::runner::protect_runner_process(build.disk_mb > 0);
  boost::asio::io_context ioc;
  auto storage = dp::storage::storage_from_settings(ioc.get_executor(), common);
  if (!storage) {
    dp::log::error("cannot open storage", {{"error", storage.error()}});
    return dp::settings::exit_misconfigured;
  }
  return dp::runner::run_build(ioc, opts, std::move(*job), **storage);
}
