#include "start_deployment.hpp"

#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/core/log.hpp"
#include "dp/core/preview_alias.hpp"

namespace dp::api {

namespace asio = boost::asio;

namespace {

constexpr int create_attempts = 5;

}  // namespace

std::string production_branch(const proto::project& p) {
  return p.production_branch.value_or("main");
}

proto::deployment_target deployment_target_for(const proto::project& p,
                                               const deployment_source& source) {
  if (source.pull_request) {
    return proto::deployment_target::preview;
  }
  if (source.branch && *source.branch != production_branch(p)) {
    return proto::deployment_target::preview;
  }
  return proto::deployment_target::production;
}

proto::job job_for(const proto::project& p, const proto::deployment& d, bool no_cache,
                   int64_t build_timeout_s) {
  return proto::job{.deployment_id = d.id,
                    .project = p.name,
                    .git_url = d.git_url,
                    .ref = d.ref,
                    .commit = d.commit,
                    .root_dir = p.root_dir,
                    .install_command = p.install_command,
                    .build_command = p.build_command,
                    .output_dir = p.output_dir,
                    .env = proto::build_env(p, d.target, d.fork),
                    .attempt = 1,
                    .timeout_s = build_timeout_s,
                    .enqueued_at = d.created_at,
                    .mode = p.mode,
                    .install_scripts = p.install_scripts,
                    .no_cache = no_cache,
                    .fork = d.fork,
                    .production_branch = p.production_branch,
                    .target = d.target,
                    .shadowing = p.shadowing};
}

asio::awaitable<dp::result<proto::deployment>> start_git_deployment(state::records& records,
                                                                    proto::project p,
                                                                    deployment_source source,
                                                                    start_options options) {
  if (p.git_url.empty()) {
    co_return dp::make_error(dp::errc::conflict,
                             "project '{}' has no git URL (it was deployed from a directory): "
                             "upload a directory again or PATCH a git_url",
                             p.name);
  }
  if (source.default_branch && !p.production_branch) {
    auto learned = co_await records.learn_production_branch(p.name, *source.default_branch);
    if (!learned) {
      co_return learned.error();
    }
    // Not learned: another request set one first; read theirs.
    auto current = co_await records.get_project(p.name);
    if (!current) {
      co_return current.error();
    }
    p = std::move(*current);
  }
  // Without a branch: the production branch, or the remote's default when none is known.
  std::optional<std::string> branch = source.branch ? source.branch : p.production_branch;
  for (int attempt = 1;; ++attempt) {
    proto::deployment d;
    d.id = dp::new_deployment_id();
    d.project = p.name;
    d.git_url = p.git_url;
    d.ref = branch;
    d.branch = branch;
    d.commit = source.commit;
    d.commit_message = source.commit_message;
    d.commit_author = source.commit_author;
    d.pull_request = source.pull_request;
    d.fork = source.fork;
    d.target = deployment_target_for(p, source);
    d.trigger = source.trigger;
    d.created_at = dp::now_ms();
    if (source.no_cache) {
      // Known from the start; a container build reads it back (job_from_deployment).
      d.cache = "off";
    }
    // A named job: g++ 12 mishandles a temporary argument of a co_await.
    auto job = job_for(p, d, source.no_cache, options.build_timeout_s);
    if (options.before_queued) {
      co_await options.before_queued(d);
    }
    auto created = co_await records.create_deployment(d, job);
    if (!created) {
      // A taken immutable alias: another id.
      if (!created.error().is(dp::errc::conflict) || attempt == create_attempts) {
        co_return created.error();
      }
      continue;
    }
    // The branch's queued deployments never start (the worker cancels them); its running build
    // is stopped too unless the project keeps it.
    if (p.cancel_superseded) {
      auto stopped = co_await records.cancel_superseded(d);
      if (!stopped) {
        // The deployment exists: refusing it now would hide it from the caller.
        dp::log::warn("cannot stop the builds a new deployment supersedes",
                      {{"deployment", d.id}, {"error", stopped.error()}});
      } else if (!stopped->empty()) {
        dp::log::info("superseded builds asked to stop",
                      {{"deployment", d.id}, {"count", static_cast<int64_t>(stopped->size())}});
      }
    }
    co_return d;
  }
}

asio::awaitable<dp::result<bool>> remove_branch_preview(state::records& records,
                                                        std::string project, std::string branch) {
  auto label = dp::branch_alias(project, branch);
  co_return co_await records.remove_preview_alias(project, label);
}

asio::awaitable<dp::result<bool>> remove_pull_request_preview(state::records& records,
                                                              std::string project, int64_t number) {
  co_return co_await records.remove_preview_alias(project, dp::pull_request_alias(project, number));
}

}  // namespace dp::api
