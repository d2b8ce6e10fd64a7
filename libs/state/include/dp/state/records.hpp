// The platform's records in Redis (projects, deployments, aliases, the job queue) behind one
// interface, so that the api-server, the build-runner and the proxy agree on every key, field and
// transition. The contracts are in proto/README.md; this is their only writer.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"
#include "dp/proto/hash.hpp"
#include "dp/proto/keys.hpp"
#include "dp/proto/types.hpp"

namespace dp::redis {
class client;
}

namespace dp::state {

template <class T>
using task = boost::asio::awaitable<dp::result<T>>;

// What a project's deployments keep in the object store, from their records (records::usage).
struct storage_usage {
  int64_t output_files = 0;  // __outputs/<id>/ of deployments not pruned
  int64_t output_bytes = 0;
  int64_t source_files = 0;  // __sources/<id>.tar.gz of deployments not pruned
  int64_t source_bytes = 0;
  int64_t deployments = 0;  // records
  int64_t pruned = 0;       // records whose files the retention policy removed
  bool operator==(const storage_usage&) const = default;
};

// What a status change did.
struct transition_outcome {
  bool applied = false;                 // false: refused (the stored status forbids it)
  proto::deployment_status previous{};  // the status found
};

class records {
 public:
  // The client is borrowed; it must outlive this object and live on the same executor.
  records(redis::client& redis, proto::keys keys);

  const proto::keys& keys() const noexcept { return keys_; }
  redis::client& redis() noexcept { return redis_; }

  // Projects. create_project refuses with errc::conflict an existing name, and a name that is an
  // alias already (alias:<name>: an older deployment's "<project>-<short id>" URL).
  task<void> create_project(const proto::project& p);
  // Rewrites every field (fields that became null are removed); the project must exist.
  task<void> save_project(const proto::project& p);
  task<proto::project> get_project(std::string_view name);
  task<std::vector<std::string>> project_names();  // sorted
  // Removes the project record, its index, its production alias (alias:<name>) and its preview
  // aliases, each unless it serves another project's deployment; deployments are the caller's
  // business.
  task<void> delete_project(std::string_view name);
  // Publishes the event on events:routes (ts_ms now when 0): after a change the proxies cache
  // per host that no alias event announces (proto::route_event says which).
  task<void> publish_routes(proto::route_event e);

  // Writes the deployment (status queued), indexes it under its project, reserves its immutable
  // alias (dp::immutable_alias: `<project>--<short id>`) with SET NX and pushes the job on the
  // queue. errc::conflict when the alias is taken (the caller makes a new id). Fills d.alias.
  task<void> create_deployment(proto::deployment& d, const proto::job& j);
  // The same without the queue: for a build that runs at once (build-runner build with
  // GIT_REPOSITORY_URL and PROJECT_ID, the original design's entrypoint).
  task<void> record_deployment(proto::deployment& d);
  task<proto::deployment> get_deployment(std::string_view id);
  // Newest first.
  task<std::vector<std::string>> deployment_ids(std::string_view project, int64_t offset,
                                                int64_t count);
  task<int64_t> deployment_count(std::string_view project);

  // Moves a deployment to `to` if the stored status allows it (proto::can_transition), sets
  // `fields` in the same step and publishes a status event: atomically, in one script, so a late
  // `ready` can never overwrite `canceled`. errc::not_found when there is no such deployment.
  task<transition_outcome> transition(std::string_view id, proto::deployment_status to,
                                      const proto::hash_fields& fields = {},
                                      std::optional<std::string> error = {});
  // Puts a taken job back for another attempt, atomically: the taken job's text leaves the
  // processing list and, unless the deployment is final by now, its status goes back to queued
  // with `next.attempt` and `next` is pushed on the queue.
  task<transition_outcome> requeue(std::string_view taken_job_text, const proto::job& next);
  // Sets fields that are not the status (commit, files, bytes).
  task<void> set_fields(std::string_view id, const proto::hash_fields& fields);
  // Removes the deployment's record, logbook, index entry and immutable alias (if it still points
  // at this deployment).
  task<void> delete_deployment(const proto::deployment& d);

  // Points alias:<label> at a deployment of `project` and publishes an alias event; errc::conflict
  // (nothing changed) when the alias serves another project's deployment, or the deployment was
  // pruned. Moving the production alias (label == project) sets production_until on the
  // deployment it leaves.
  task<void> set_alias(std::string_view label, std::string_view project,
                       std::string_view deployment_id);
  // The end of a successful build, in one script: status ready with `fields` (refused, like
  // transition(), when the stored status forbids it; a deployment that is ready already goes live
  // again), then the production and immutable aliases, then the status event: whoever sees
  // `ready` finds the site served. errc::conflict when an alias serves another project's
  // deployment (that one is left alone; the status is ready all the same); errc::not_found, and
  // nothing moved, without a record.
  task<transition_outcome> go_live(const proto::deployment& d, const proto::hash_fields& fields);
  // The same without fields (a forwarding overload: g++ 12 mishandles class-type default
  // arguments of coroutines).
  task<transition_outcome> go_live(const proto::deployment& d);
  // Previews. go_live sets a deployment's preview_aliases (forward only, like production) and
  // lists them in project:<name>:previews. remove_preview_alias removes one (a branch deleted, a
  // pull request closed): true when there was one; errc::conflict, nothing changed, when it
  // serves another project's deployment.
  task<bool> remove_preview_alias(std::string_view project, std::string_view label);
  // The preview labels go-live has set for the project (sorted; some may be removed since).
  task<std::vector<std::string>> preview_labels(std::string_view project);
  // Sets the project's production branch when it has none (a forge's default branch): true
  // when it was set.
  task<bool> learn_production_branch(std::string_view project, std::string_view branch);
  // A newer deployment of a branch supersedes the older ones of that (project, branch): their
  // running builds are asked to stop (request_cancel, reason "superseded by <id>"); queued ones
  // are left to the worker, which cancels them before they start (queue::newer_active). Looks
  // at the project's newest `window` deployments; returns the ids it asked to stop.
  task<std::vector<std::string>> cancel_superseded(const proto::deployment& newer, int window = 50);
  // The deployment id an alias points at, or nullopt.
  task<std::optional<std::string>> resolve_alias(std::string_view label);
  // The alias label a custom domain (domain:<fqdn>) serves, or nullopt.
  task<std::optional<std::string>> resolve_domain(std::string_view fqdn);

  // Retention. mark_pruned sets pruned_at and lists the id in retention:pruning, in one script,
  // unless the deployment is not final, is pruned already or is in production (false then); its
  // files go after that, and pruned_files_removed unlists it. pruning() is what is still listed.
  task<bool> mark_pruned(std::string_view id, std::string_view project);
  task<std::vector<std::string>> pruning();
  task<void> pruned_files_removed(std::string_view id);
  // The retention pass's turn across workers: true for the one holder that set lock:retention
  // (NX); it expires after `ttl`, which spaces the passes.
  task<bool> take_retention_turn(std::string_view holder, std::chrono::milliseconds ttl);
  // The alias labels that custom domains (domain:<fqdn>) serve, sorted, without repeats.
  task<std::vector<std::string>> domain_targets();
  // The project's storage use, summed inside Redis in one script (O(its deployments)).
  task<storage_usage> usage(std::string_view project);

  // The job queue's length (for metrics).
  task<int64_t> queue_length();
  // How many deployments are in each status now (for metrics); a status with none is absent.
  // Counted in one script, O(deployments): meant for a scrape every few seconds, not per request.
  task<std::map<std::string, int64_t>> deployments_by_status();

  // Cancel: for a queued deployment, sets canceled at once; otherwise records the durable
  // request and publishes it for the worker holding the job. Returns the transition outcome of
  // the immediate cancel (applied=false when a running build was asked to stop instead).
  task<transition_outcome> request_cancel(const proto::cancel_request& r);
  task<std::optional<proto::cancel_request>> cancel_requested(std::string_view id);

 private:
  task<void> insert_deployment(proto::deployment& d, const proto::job* j);
  task<transition_outcome> transition_from(std::string_view id, proto::deployment_status to,
                                           const proto::hash_fields& fields,
                                           std::optional<std::string> error,
                                           const std::vector<proto::deployment_status>& from);

  redis::client& redis_;
  proto::keys keys_;
};

// The preview alias labels go-live sets for a deployment: its branch's (dp::branch_alias) and
// its pull request's (dp::pull_request_alias), when it has them; for production deployments too.
// A fork's pull request (d.fork) gets its pull request's only: its branch is not the project's.
std::vector<std::string> preview_aliases(const proto::deployment& d);

// Two deployments of one branch (deployments without one, the remote's default, are one branch).
bool same_branch(const proto::deployment& a, const proto::deployment& b);

}  // namespace dp::state
