// The retention policy for old deployments' objects (__outputs/<id>/ and __sources/<id>.tar.gz):
// which deployments keep their files (a pure function) and the pass that prunes the rest, run by
// the worker at its reaper's sweep, one worker of the fleet at a time (records::
// take_retention_turn). A pruned deployment keeps its record with pruned_at; promote refuses it.
// The same pass removes the build cache (__cache/<project>/) of a project that has not built for
// BUILD_CACHE_DAYS: a build expires its project's old entries when it saves, so without builds
// nothing else would.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dp/buildplan/cache.hpp"
#include "dp/core/error.hpp"
#include "dp/proto/types.hpp"

namespace dp::state {
class records;
}
namespace dp::storage {
class object_store;
}

namespace dp::worker {

// Per project: the newest keep_deployments ready deployments, and every ready one that was in
// production within keep_production_days, keep their files. Defaults: RETENTION_* (settings).
struct retention_policy {
  int64_t keep_deployments = 10;
  int64_t keep_production_days = 30;
  // BUILD_CACHE_DAYS, platform-wide: a build cache none of whose entries was used (restored or
  // written) for this long goes whole. 0: never.
  int64_t cache_days = 7;
};

// The project's overrides over the platform's policy (cache_days is the platform's).
retention_policy policy_for(const proto::project& p, const retention_policy& platform);

// What the policy needs besides the records.
struct retention_facts {
  std::optional<std::string> production;  // alias:<project>
  // Ids custom domains (domain:<fqdn>) and the project's preview aliases serve.
  std::set<std::string> served;
  int64_t now_ms = 0;
};

// The deployments of one project whose files go, oldest first. Never: one that is not final or
// is pruned already; production; the one production left last (what a rollback goes back to);
// one a custom domain or a preview alias serves; the newest keep_deployments ready ones; a ready
// one whose production_until is within keep_production_days; a failed or canceled one created
// within keep_production_days (its logs and uploaded source, for looking into it).
std::vector<std::string> select_prunable(const std::vector<proto::deployment>& deployments,
                                         const retention_policy& policy,
                                         const retention_facts& facts);

// Whether a build cache's index says it was unused for `days` (its newest used_at older): an
// empty index counts as unused since forever.
bool cache_unused(const buildplan::cache_index& index, int64_t days, int64_t now_ms);

struct retention_report {
  int64_t projects = 0;
  int64_t pruned = 0;   // deployments this pass marked pruned
  int64_t objects = 0;  // objects it removed under __outputs/<id>/ and __sources/ (manifests aside)
  int64_t caches = 0;   // projects whose unused build cache it removed
  bool operator==(const retention_report&) const = default;
};

// One pass over every project: first the removals an earlier pass left unfinished
// (retention:pruning), then each project's select_prunable, each marked pruned (records::
// mark_pruned, which re-checks production and the preview aliases in Redis) before its objects are
// removed (the manifest first: the site stops resolving before its files go). Passes may overlap: a
// deployment is marked, and counted, by one of them. Files that will not go are logged and left for
// the next pass; a Redis error ends the pass. Then each project's build cache when cache_unused
// says so (an index that cannot be read is left to the next build, which replaces it); a build
// starting meanwhile finds its entries gone and installs without them.
boost::asio::awaitable<dp::result<retention_report>> prune_deployments(
    state::records& records, storage::object_store& store, const retention_policy& platform);

}  // namespace dp::worker
