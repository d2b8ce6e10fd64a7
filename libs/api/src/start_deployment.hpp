#pragma once
// Starting a git deployment of a project, and removing a preview alias: what the API, the CLI,
// the dashboard, deploy hooks and forge webhooks share.
//
// Interface (kept stable; extended by adding):
//   deployment_source     what to deploy: branch (null: the production branch), commit sha,
//                         message and author as the trigger reported them, pull request, trigger,
//                         the repository's default branch as a forge reported it, no_cache.
//   start_git_deployment(records, project, source, options)
//                         creates the deployment and its job. The target is production when the
//                         branch is the project's production branch (production_branch()) and
//                         there is no pull request; else preview: go-live then sets the branch's
//                         alias `<project>--<slug>` (and `<project>--pr-<n>`), never production.
//                         Older deployments of the same (project, branch) are superseded: queued
//                         ones never start (the worker cancels them), running ones are asked to
//                         stop when the project's cancel_superseded is on (the default). Other
//                         branches and production are left alone. A source's default_branch becomes
//                         the project's production branch when it has none yet.
//   remove_branch_preview(records, project, branch)
//   remove_pull_request_preview(records, project, number)
//                         a branch deleted, a pull request closed: its alias goes (true when
//                         there was one). The deployments stay (retention prunes them later).
//   production_branch(project), deployment_target_for(project, source)
//                         the rules above as pure functions.

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "dp/core/error.hpp"
#include "dp/proto/types.hpp"
#include "dp/state/records.hpp"

namespace dp::api {

struct deployment_source {
  // The branch to build; null: the project's production branch (the remote's default branch
  // when the project has none).
  std::optional<std::string> branch;
  // The commit the trigger names (a push's head, 40 or 64 hex digits): recorded on the
  // deployment at once, and the build checks out exactly that commit (it fails when the
  // commit is not on the branch); null: the branch's head at build time.
  std::optional<std::string> commit;
  std::optional<std::string> commit_message;
  std::optional<std::string> commit_author;
  std::optional<int64_t> pull_request;
  proto::deployment_trigger trigger = proto::deployment_trigger::api;
  // The repository's default branch as a forge's payload reports it: learned as the project's
  // production branch when the project has none.
  std::optional<std::string> default_branch;
  bool no_cache = false;  // the build does not restore the project's build cache
  // A fork's pull request: `branch` is the pull request's ref in the base repository
  // (refs/pull/<n>/head), the build gets the project's fork_env only and no build cache, and
  // only the pull request's alias serves it.
  bool fork = false;
};

struct start_options {
  int64_t build_timeout_s = 900;
  // Runs once the deployment's id is drawn and before its job is queued, so that what it records
  // (a webhook's commit status target) is there when a worker takes the job; it cannot refuse
  // the deployment. A deployment retried with another id (its alias was taken) runs it again.
  std::function<boost::asio::awaitable<void>(const proto::deployment&)> before_queued;
};

// The project's production branch: its setting, else "main" (a project learns its repository's
// default branch from a forge's payload, or the user sets it).
std::string production_branch(const proto::project& p);

// Production for the production branch (or no branch: the remote's default) without a pull
// request; preview otherwise.
proto::deployment_target deployment_target_for(const proto::project& p,
                                               const deployment_source& source);

// The job of a new deployment `d` of `p` (the env of d's target).
proto::job job_for(const proto::project& p, const proto::deployment& d, bool no_cache,
                   int64_t build_timeout_s);

// errc::conflict for a project without a git URL (made by a directory upload).
boost::asio::awaitable<dp::result<proto::deployment>> start_git_deployment(state::records& records,
                                                                           proto::project project,
                                                                           deployment_source source,
                                                                           start_options options);

boost::asio::awaitable<dp::result<bool>> remove_branch_preview(state::records& records,
                                                               std::string project,
                                                               std::string branch);
boost::asio::awaitable<dp::result<bool>> remove_pull_request_preview(state::records& records,
                                                                     std::string project,
                                                                     int64_t number);

}  // namespace dp::api
