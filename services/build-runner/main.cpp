// build-runner: `build` runs one deployment (the build container's entrypoint); `worker` consumes
// the build queue and launches builds. Wiring only; the logic lives in libs/.
#include <sys/prctl.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <fstream>
#include <memory>
#include <sstream>

#include "dp/buildplan/git.hpp"
#include "dp/runner/runner.hpp"
#include "dp/runner/work_fs.hpp"

#include "dp/core/config.hpp"
#include "dp/core/id.hpp"
#include "dp/core/log.hpp"
#include "dp/core/shutdown.hpp"
#include "dp/core/spawn.hpp"
#include "dp/proto/json.hpp"
#include "dp/redis/client.hpp"
#include "dp/settings/settings.hpp"
#include "dp/state/logbook.hpp"
#include "dp/state/store.hpp"
#include "dp/storage/object_store.hpp"
#include "worker_mode.hpp"

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
  std::string build_network = "egress";
  std::vector<std::string> allowed_git_protocols;
  int64_t build_timeout_s = 900;
  int64_t build_memory_mb = 4096;
  int64_t build_disk_mb = 10240;
  int64_t build_pids_max = 1024;
  // worker mode
  std::string launcher = "process";
  int64_t worker_concurrency = 2;
  int64_t lease_ttl_s = 30;
  int64_t max_attempts = 2;
  std::string build_image;
};

// Bad input: one line on stderr, exit 2.
int bad_input(std::string_view what) {
  std::fprintf(stderr, "build-runner: %.*s\n", static_cast<int>(what.size()), what.data());
  return 2;
}

// The job from --job, or from GIT_REPOSITORY_URL + PROJECT_ID (a new deployment id). --deployment
// needs Redis and is resolved later.
dp::result<dp::proto::job> job_from_input(const runner_config& cfg) {
  int sources =
      !cfg.deployment_id.empty() + !cfg.job_file.empty() + !cfg.git_repository_url.empty();
  if (sources != 1) {
    return dp::make_error(dp::errc::invalid_argument,
                          "give exactly one job source: --deployment <id>, --job <file.json>, or "
                          "GIT_REPOSITORY_URL with PROJECT_ID");
  }
  dp::proto::job j;
  if (!cfg.job_file.empty()) {
    std::ifstream in(cfg.job_file, std::ios::binary);
    std::ostringstream text;
    if (!in || !(text << in.rdbuf())) {
      return dp::make_error(dp::errc::invalid_argument, "cannot read the job file {}",
                            cfg.job_file);
    }
    auto parsed = dp::proto::parse_job(text.str());
    if (!parsed) {
      return dp::make_error(dp::errc::invalid_argument, "invalid job file {}: {}", cfg.job_file,
                            parsed.error().message);
    }
    j = std::move(*parsed);
  } else if (!cfg.git_repository_url.empty()) {
    if (cfg.project_id.empty()) {
      return dp::make_error(dp::errc::invalid_argument,
                            "GIT_REPOSITORY_URL needs PROJECT_ID (the project's name)");
    }
    j.deployment_id = dp::new_deployment_id();
    j.project = cfg.project_id;
    j.git_url = cfg.git_repository_url;
    j.enqueued_at = dp::state::now_ms();
  }
  if (!j.git_url.empty()) {
    if (auto ok = dp::buildplan::check_git_url(j.git_url, cfg.allowed_git_protocols); !ok) {
      return dp::make_error(dp::errc::invalid_argument, "{}", ok.error().message);
    }
  }
  return j;
}

// The build, start to finish; returns the exit code.
boost::asio::awaitable<int> run_build(const runner_config& cfg, std::optional<dp::proto::job> job,
                                      dp::storage::object_store& storage,
                                      std::unique_ptr<dp::runner::runner>& current,
                                      const bool& signaled) {
  auto ex = co_await boost::asio::this_coro::executor;
  dp::runner::runner_options opts;
  opts.allowed_git_protocols = cfg.allowed_git_protocols;
  opts.sandbox = cfg.sandbox == "bwrap";
  opts.network = *dp::runner::parse_network_mode(cfg.build_network);
  opts.timeout = std::chrono::seconds(cfg.build_timeout_s);
  opts.memory_bytes = static_cast<uint64_t>(cfg.build_memory_mb) << 20;
  opts.disk_bytes = static_cast<uint64_t>(cfg.build_disk_mb) << 20;
  opts.pids_max = static_cast<uint64_t>(cfg.build_pids_max);
  // The per-uid process limit follows the cgroup's: the cgroup (which also counts the sandbox's
  // own processes) is reached first and named in the log.
  if (cfg.build_pids_max > 0) {
    opts.limits.processes = static_cast<uint64_t>(cfg.build_pids_max);
  }

  if (!cfg.common.redis_set) {
    // No Redis: nothing is recorded; the log goes to stdout.
    auto sink = dp::runner::make_stream_sink(STDOUT_FILENO, cfg.common.log.format == "json",
                                             job->deployment_id);
    current = std::make_unique<dp::runner::runner>(*job, opts, storage, *sink);
    if (signaled) {
      current->stop("received a signal");
    }
    auto report = co_await current->run();
    co_return dp::runner::exit_code(report.outcome);
  }

  dp::redis::options redis_opts{.url = cfg.common.redis};
  dp::redis::client redis(ex, redis_opts);
  dp::state::store store(redis, dp::proto::keys(cfg.common.key_prefix));
  auto infra = [](std::string_view what, const dp::error& e) {
    dp::log::error("infrastructure failure", {{"step", what}, {"error", e}});
    return 3;
  };
  if (!job) {
    auto j = co_await dp::runner::job_from_deployment(store, cfg.deployment_id);
    if (!j) {
      co_return j.error().is(dp::errc::unavailable) || j.error().is(dp::errc::timeout)
          ? infra("read the deployment", j.error())
          : bad_input(j.error().message);
    }
    job = std::move(*j);
  }
  dp::proto::deployment d;
  if (!cfg.git_repository_url.empty()) {
    // The original design's entrypoint: the deployment is recorded here, not queued.
    d.id = job->deployment_id;
    d.project = job->project;
    d.git_url = job->git_url;
    d.created_at = dp::state::now_ms();
    // The project appears in the API like any other (an existing record is kept as it is).
    dp::proto::project p{.name = d.project, .git_url = d.git_url, .created_at = d.created_at};
    if (auto r = co_await store.create_project(p); !r && !r.error().is(dp::errc::conflict)) {
      co_return infra("record the project", r.error());
    }
    if (auto r = co_await store.record_deployment(d); !r) {
      co_return r.error().is(dp::errc::conflict) ? bad_input(r.error().message)
                                                 : infra("record the deployment", r.error());
    }
  } else {
    auto r = co_await store.get_deployment(job->deployment_id);
    if (!r) {
      co_return r.error().is(dp::errc::not_found) ? bad_input(r.error().message)
                                                  : infra("read the deployment", r.error());
    }
    if (dp::proto::is_final(r->status)) {
      co_return bad_input(fmt::format("deployment {} is already {}", job->deployment_id,
                                      dp::proto::to_string(r->status)));
    }
    d = std::move(*r);
  }

  // A retried attempt continues the logbook where the last one stopped.
  auto seq = co_await dp::state::next_log_seq(redis, store.keys(), d.id);
  if (!seq) {
    co_return infra("read the logbook", seq.error());
  }
  dp::state::log_writer logs(ex, redis, store.keys(), d.id, *seq);
  auto sink = dp::runner::make_redis_sink(store, logs, d);
  current = std::make_unique<dp::runner::runner>(*job, opts, storage, *sink);
  if (signaled) {
    current->stop("received a signal");
  }

  // Canceled before it started: nothing runs.
  if (auto c = co_await store.cancel_requested(d.id); c && *c) {
    current->cancel((*c)->reason.value_or("canceled by request"));
  }
  dp::runner::cancel_watch watch(ex, store, redis_opts, d.id,
                                 [&current](std::string reason) { current->cancel(reason); });
  watch.start();
  auto report = co_await current->run();
  watch.stop();
  redis.close();
  co_return dp::runner::exit_code(report.outcome);
}

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
         if (!v.empty() && !dp::proto::is_project_name(v)) {
           return "must be a project name: 1 to 54 of [a-z0-9-], not starting or ending with '-'";
         }
         cfg.project_id = std::string(v);
         return std::nullopt;
       }});
  parser.add_choice(
      "SANDBOX", &cfg.sandbox, "bwrap", {"bwrap", "none"},
      "build: run install and build under bubblewrap, or unsandboxed inside a container");
  parser.add_choice("BUILD_NETWORK", &cfg.build_network, "egress", {"egress", "none"},
                    "build: the sandbox's network: egress (public addresses only, through "
                    "slirp4netns; needs root) or none (a loopback of its own)");
  parser.add_list("ALLOWED_GIT_PROTOCOLS", &cfg.allowed_git_protocols, "https",
                  "Git URL schemes a build may clone", {"https", "http", "file"});
  parser.add_int("BUILD_TIMEOUT_S", &cfg.build_timeout_s, 900, 10, 86400,
                 "Wall-clock limit of one build, in seconds");
  // Defaults for a self-hosted box running WORKER_CONCURRENCY=2 builds: half of what the hosted
  // services give (Vercel, Netlify and Cloudflare Pages: 8 GB), which a Next.js or CRA build
  // fits in; 10 GiB holds a large node_modules, its npm cache and the output several times.
  parser.add_int("BUILD_MEMORY_MB", &cfg.build_memory_mb, 4096, 0, 1 << 20,
                 "Memory of one build as a whole (install and build, every process; no swap), "
                 "in MiB; 0: no limit");
  parser.add_int("BUILD_DISK_MB", &cfg.build_disk_mb, 10240, 0, 1 << 20,
                 "Disk of one build's work directory (checkout, HOME, npm cache, /tmp), in MiB; "
                 "0: no limit");
  parser.add_int("BUILD_PIDS_MAX", &cfg.build_pids_max, 1024, 0, 1 << 22,
                 "Processes and threads of one build at once; 0: no limit");
  parser.add_choice("LAUNCHER", &cfg.launcher, "process", {"process", "docker", "ecs"},
                    "worker: how builds are launched");
  parser.add_int("WORKER_CONCURRENCY", &cfg.worker_concurrency, 2, 1, 256,
                 "worker: builds run at once");
  parser.add_int("LEASE_TTL_S", &cfg.lease_ttl_s, 30, 5, 3600,
                 "worker: a job whose lease is not refreshed for this long is re-queued");
  parser.add_int("MAX_ATTEMPTS", &cfg.max_attempts, 2, 1, 10, "worker: attempts per job");
  parser.add_string("BUILD_IMAGE", &cfg.build_image, "deploy-platform/build-runner:latest",
                    "worker (docker, ecs): the build container image");
  build_runner::worker_settings worker;
  build_runner::add_worker_settings(parser, worker);
  auto outcome = parser.parse(argc, argv, dp::config::environment_from(environ));
  if (!outcome.run) {
    return outcome.exit_code;
  }
  if ((cfg.build_memory_mb > 0 && cfg.build_memory_mb < 64) ||
      (cfg.build_disk_mb > 0 && cfg.build_disk_mb < 16)) {
    return bad_input("BUILD_MEMORY_MB must be 0 or at least 64, BUILD_DISK_MB 0 or at least 16");
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

  if (args[0] == "worker") {
    worker.launcher = cfg.launcher;
    worker.concurrency = cfg.worker_concurrency;
    worker.lease_ttl_s = cfg.lease_ttl_s;
    worker.max_attempts = cfg.max_attempts;
    worker.build_image = cfg.build_image;
    worker.sandbox = cfg.sandbox;
    worker.build_network = cfg.build_network;
    worker.allowed_git_protocols = cfg.allowed_git_protocols;
    worker.build_timeout_s = cfg.build_timeout_s;
    worker.build_memory_mb = cfg.build_memory_mb;
    worker.build_disk_mb = cfg.build_disk_mb;
    worker.build_pids_max = cfg.build_pids_max;
    // The process launcher runs this same binary's `build` mode.
    char self[4096] = {};
    auto n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    return build_runner::run_worker(cfg.common, worker, n > 0 ? std::string(self, n) : argv[0]);
  }

  std::optional<dp::proto::job> job;
  if (cfg.deployment_id.empty() || !cfg.job_file.empty() || !cfg.git_repository_url.empty()) {
    auto j = job_from_input(cfg);
    if (!j) {
      return bad_input(j.error().message);
    }
    job = std::move(*j);
  } else if (!cfg.common.redis_set) {
    return bad_input("--deployment needs REDIS_URL");
  }

  // The build runs as our user: without this, its scripts could read the runner's secrets
  // (REDIS_URL, AWS_*) from /proc/<runner>/environ or attach to it with ptrace. Matters most
  // with SANDBOX=none (in a container), where no pid namespace hides the runner.
  ::prctl(PR_SET_DUMPABLE, 0);
  // The work filesystem is mounted in a namespace of our own, so it dies with us even by SIGKILL.
  if (::geteuid() == 0 && cfg.build_disk_mb > 0) {
    if (auto ns = dp::runner::enter_private_mount_namespace(); !ns) {
      dp::log::warn("the build's mounts stay in the host's namespace",
                    {{"error", ns.error().message}});
    }
  }

  boost::asio::io_context ioc;
  auto storage_url = dp::storage::parse_storage_url(cfg.common.storage_url);
  if (!storage_url) {
    return bad_input(storage_url.error().message);
  }
  dp::storage::store_options store_opts;
  store_opts.credentials_endpoint = cfg.common.aws_credentials.endpoint();
  auto storage = dp::storage::open_storage(ioc.get_executor(), *storage_url,
                                           cfg.common.aws_credentials.keys(), store_opts);
  if (!storage) {
    dp::log::error("cannot open storage", {{"error", storage.error()}});
    return 3;
  }
  // SIGTERM stops the build's process group; the build ends failed ("runner stopped").
  std::unique_ptr<dp::runner::runner> current;
  bool signaled = false;
  dp::on_shutdown_signal(ioc, [&](int signo) {
    signaled = true;
    if (current) {
      current->stop(fmt::format("received signal {}", signo));
    }
  });
  int code = 3;
  // An exception leaves code at 3.
  dp::spawn(
      ioc.get_executor(),
      [&, job = std::move(job)]() mutable -> boost::asio::awaitable<void> {
        code = co_await run_build(cfg, std::move(job), **storage, current, signaled);
      },
      "build",
      [&](bool threw) {
        if (threw) {
          dp::log::error("the build runner failed unexpectedly");
        }
        // The signal watch would keep the loop alive: the build is over.
        ioc.stop();
      });
  ioc.run();
  return signaled && code == 0 ? 3 : code;
}
