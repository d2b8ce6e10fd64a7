#include "dp/runner/build_mode.hpp"

#include <sys/prctl.h>
#include <unistd.h>

#include <boost/asio/this_coro.hpp>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "dp/buildplan/git.hpp"
#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/core/log.hpp"
#include "dp/core/shutdown.hpp"
#include "dp/core/spawn.hpp"
#include "dp/proto/json.hpp"
#include "dp/redis/client.hpp"
#include "dp/runner/work_fs.hpp"
#include "dp/state/logbook.hpp"
#include "dp/state/records.hpp"
#include "dp/storage/object_store.hpp"

namespace dp::runner {
namespace {

// Bad input: one line on stderr, exit 2.
int bad_input(std::string_view what) {
  std::fprintf(stderr, "build-runner: %.*s\n", static_cast<int>(what.size()), what.data());
  return 2;
}

// The build, start to finish; returns the exit code.
boost::asio::awaitable<int> build(const build_mode_options& cfg, std::optional<proto::job> job,
                                  storage::object_store& storage, std::unique_ptr<runner>& current,
                                  const bool& signaled) {
  auto ex = co_await boost::asio::this_coro::executor;
  runner_options opts = cfg.runner;
  // The per-uid process limit follows the cgroup's: the cgroup (which also counts the sandbox's
  // own processes) is reached first and named in the log.
  if (opts.pids_max > 0) {
    opts.limits.processes = opts.pids_max;
  }

  if (!cfg.redis) {
    // No Redis: nothing is recorded; the log goes to stdout.
    auto sink = make_stream_sink(STDOUT_FILENO, cfg.json_logs, job->deployment_id);
    current = std::make_unique<runner>(*job, opts, storage, *sink);
    if (signaled) {
      current->stop("received a signal");
    }
    auto report = co_await current->run();
    co_return exit_code(report.outcome);
  }

  const redis::options& redis_opts = *cfg.redis;
  redis::client redis(ex, redis_opts);
  state::records records(redis, proto::keys(cfg.key_prefix));
  auto infra = [](std::string_view what, const error& e) {
    log::error("infrastructure failure", {{"step", what}, {"error", e}});
    return 3;
  };
  if (!job) {
    auto j = co_await job_from_deployment(records, cfg.input.deployment_id);
    if (!j) {
      co_return j.error().is(errc::unavailable) || j.error().is(errc::timeout)
          ? infra("read the deployment", j.error())
          : bad_input(j.error().message);
    }
    job = std::move(*j);
  }
  proto::deployment d;
  if (!cfg.input.git_repository_url.empty()) {
    // The original design's entrypoint: the deployment is recorded here, not queued.
    d.id = job->deployment_id;
    d.project = job->project;
    d.git_url = job->git_url;
    d.created_at = dp::now_ms();
    // The project appears in the API like any other (an existing record is kept as it is).
    proto::project p{.name = d.project, .git_url = d.git_url, .created_at = d.created_at};
    if (auto r = co_await records.create_project(p); !r && !r.error().is(errc::conflict)) {
      co_return infra("record the project", r.error());
    }
    if (auto r = co_await records.record_deployment(d); !r) {
      co_return r.error().is(errc::conflict) ? bad_input(r.error().message)
                                             : infra("record the deployment", r.error());
    }
  } else {
    auto r = co_await records.get_deployment(job->deployment_id);
    if (!r) {
      co_return r.error().is(errc::not_found) ? bad_input(r.error().message)
                                              : infra("read the deployment", r.error());
    }
    if (proto::is_final(r->status)) {
      co_return bad_input(fmt::format("deployment {} is already {}", job->deployment_id,
                                      proto::to_string(r->status)));
    }
    d = std::move(*r);
  }

  // A retried attempt continues the logbook where the last one stopped.
  auto seq = co_await state::next_log_seq(redis, records.keys(), d.id);
  if (!seq) {
    co_return infra("read the logbook", seq.error());
  }
  state::log_writer logs(ex, redis, records.keys(), d.id, *seq);
  auto sink = make_redis_sink(records, logs, d);
  current = std::make_unique<runner>(*job, opts, storage, *sink);
  if (signaled) {
    current->stop("received a signal");
  }

  // Canceled before it started: nothing runs.
  if (auto c = co_await records.cancel_requested(d.id); c && *c) {
    current->cancel((*c)->reason.value_or("canceled by request"));
  }
  cancel_watch watch(ex, records, redis_opts, d.id,
                     [&current](std::string reason) { current->cancel(reason); });
  watch.start();
  auto report = co_await current->run();
  watch.stop();
  redis.close();
  co_return exit_code(report.outcome);
}

}  // namespace

result<std::optional<proto::job>> job_from_input(
    const build_input& in, const std::vector<std::string>& allowed_git_protocols) {
  int sources = !in.deployment_id.empty() + !in.job_file.empty() + !in.git_repository_url.empty();
  if (sources != 1) {
    return make_error(errc::invalid_argument,
                      "give exactly one job source: --deployment <id>, --job <file.json>, or "
                      "GIT_REPOSITORY_URL with PROJECT_ID");
  }
  if (!in.deployment_id.empty()) {
    return std::optional<proto::job>();
  }
  proto::job j;
  if (!in.job_file.empty()) {
    std::ifstream file(in.job_file, std::ios::binary);
    std::ostringstream text;
    if (!file || !(text << file.rdbuf())) {
      return make_error(errc::invalid_argument, "cannot read the job file {}", in.job_file);
    }
    auto parsed = proto::parse_job(text.str());
    if (!parsed) {
      return make_error(errc::invalid_argument, "invalid job file {}: {}", in.job_file,
                        parsed.error().message);
    }
    j = std::move(*parsed);
  } else {
    if (in.project_id.empty()) {
      return make_error(errc::invalid_argument,
                        "GIT_REPOSITORY_URL needs PROJECT_ID (the project's name)");
    }
    j.deployment_id = new_deployment_id();
    j.project = in.project_id;
    j.git_url = in.git_repository_url;
    j.enqueued_at = dp::now_ms();
  }
  if (!j.git_url.empty()) {
    if (auto ok = buildplan::check_git_url(j.git_url, allowed_git_protocols); !ok) {
      return make_error(errc::invalid_argument, "{}", ok.error().message);
    }
  }
  return std::optional<proto::job>(std::move(j));
}

void protect_runner_process(bool disk_filesystem) {
  // A build that runs as our user (a runner that is not root) could otherwise read the runner's
  // secrets (REDIS_URL, AWS_*) from /proc/<runner>/environ or attach to it with ptrace. Matters
  // most with SANDBOX=none (in a container), where no pid namespace hides the runner.
  ::prctl(PR_SET_DUMPABLE, 0);
  // The work filesystem is mounted in a namespace of our own, so it dies with us even by SIGKILL.
  // Without loop devices (a container's root, which also lacks CAP_SYS_ADMIN) nothing is mounted.
  if (::geteuid() == 0 && disk_filesystem && ::access("/dev/loop-control", F_OK) == 0) {
    if (auto ns = enter_private_mount_namespace(); !ns) {
      log::warn("the build's mounts stay in the host's namespace", {{"error", ns.error().message}});
    }
  }
}

int run_build(boost::asio::io_context& ioc, const build_mode_options& opts,
              std::optional<proto::job> job, storage::object_store& storage) {
  if (!job && !opts.redis) {
    return bad_input("--deployment needs REDIS_URL");
  }
  // SIGTERM stops the build's process group; the build ends failed ("runner stopped").
  std::unique_ptr<runner> current;
  bool signaled = false;
  on_shutdown_signal(ioc, [&](int signo) {
    signaled = true;
    if (current) {
      current->stop(fmt::format("received signal {}", signo));
    }
  });
  int code = 3;
  // An exception leaves code at 3.
  spawn(
      ioc.get_executor(),
      [&, job = std::move(job)]() mutable -> boost::asio::awaitable<void> {
        code = co_await build(opts, std::move(job), storage, current, signaled);
      },
      "build",
      [&](bool threw) {
        if (threw) {
          log::error("the build runner failed unexpectedly");
        }
        // The signal watch would keep the loop alive: the build is over.
        ioc.stop();
      });
  ioc.run();
  return signaled && code == 0 ? 3 : code;
}

}  // namespace dp::runner
