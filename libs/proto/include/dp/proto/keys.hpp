// Every Redis key and channel name, built from one configurable prefix (default "dp:").
// See proto/README.md for each one's type and content.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace dp::proto {

class keys {
 public:
  explicit keys(std::string prefix = "dp:") : prefix_(std::move(prefix)) {}

  const std::string& prefix() const noexcept { return prefix_; }

  std::string project(std::string_view name) const { return cat("project:", name); }
  std::string projects() const { return cat("projects"); }
  std::string deployment(std::string_view id) const { return cat("deployment:", id); }
  std::string project_deployments(std::string_view name) const {
    return cat("project:", name, ":deployments");
  }
  std::string alias(std::string_view label) const { return cat("alias:", label); }
  // The preview alias labels (branch and pull request) go-live has set for the project: a set.
  std::string project_previews(std::string_view name) const {
    return cat("project:", name, ":previews");
  }
  // Webhooks (state::hooks): the project's webhook secret (and forge settings), a hash.
  std::string project_webhook(std::string_view name) const {
    return cat("project:", name, ":webhook");
  }
  // The project's deploy hooks: a hash of id -> JSON {id, branch, created_at, secret_sha256}.
  std::string project_hooks(std::string_view name) const { return cat("project:", name, ":hooks"); }
  // A deploy hook found by the SHA-256 of its secret: a hash {project, id, branch}.
  std::string hook(std::string_view secret_sha256) const { return cat("hook:", secret_sha256); }
  // Where a deployment's commit status goes (state::hooks): a hash {sha, target_url} with a TTL.
  std::string commit_status(std::string_view deployment_id) const {
    return cat("commit_status:", deployment_id);
  }
  // A webhook delivery id seen (SET NX with a TTL): a replayed delivery is ignored.
  std::string webhook_delivery(std::string_view provider, std::string_view id) const {
    return cat("webhook:delivery:", provider, std::string(":").append(id));
  }
  std::string domain(std::string_view fqdn) const { return cat("domain:", fqdn); }
  // For SCAN MATCH: every custom domain (retention keeps the deployments they serve).
  std::string domain_pattern() const { return pattern("domain:*"); }
  // A custom domain's record (hash: project, alias, token, state, primary, hsts, cert_*), the
  // fqdns of one project (set) and of every project (set, for the certificate issuer).
  std::string domain_record(std::string_view fqdn) const { return cat("domain-record:", fqdn); }
  std::string project_domains(std::string_view name) const {
    return cat("project:", name, ":domains");
  }
  std::string domains() const { return cat("domains"); }
  // A certificate (hash: chain, sealed key, not_after_ms, updated_at_ms) by name (an fqdn or
  // "*.<base>"), the set of names, and the channel a put or remove publishes on.
  std::string certificate(std::string_view name) const { return cat("cert:", name); }
  std::string certificates() const { return cat("certs"); }
  std::string certificates_channel() const { return cat("events:certificates"); }
  // proto::route_event: what the proxies drop from their lookup caches at once.
  std::string routes_channel() const { return cat("events:routes"); }
  // An ACME HTTP-01 answer (string with a TTL): token -> key authorization.
  std::string acme_challenge(std::string_view token) const { return cat("acme-challenge:", token); }
  std::string queue() const { return cat("queue:builds"); }
  std::string processing() const { return cat("queue:builds:processing"); }
  std::string lease(std::string_view id) const { return cat("lease:", id); }
  // One build at a time per project, across workers: held with the same rules as a lease.
  std::string project_lock(std::string_view name) const { return cat("lock:project:", name); }
  // The retention pass's turn: the worker that sets it (NX, TTL = RETENTION_INTERVAL_S) runs it.
  std::string retention_lock() const { return cat("lock:retention"); }
  // The ACME issuer's turn (one worker issues at a time), its account key (sealed with the
  // platform key) and each domain's count of consecutive failed issuances (its backoff).
  std::string acme_lock() const { return cat("lock:acme"); }
  std::string acme_account() const { return cat("acme:account"); }
  std::string acme_failures() const { return cat("acme:failures"); }
  // Published with an fqdn when a domain is verified: the issuers pass at once instead of at
  // their next tick (the lock still picks one).
  std::string acme_wake_channel() const { return cat("events:acme"); }
  // Ids of pruned deployments whose objects are not all removed yet (a pass retries them).
  std::string pruning() const { return cat("retention:pruning"); }
  std::string logs_channel(std::string_view id) const { return cat("logs:", id); }
  // For PSUBSCRIBE; glob characters in the prefix are escaped so they match literally.
  std::string logs_pattern() const { return pattern("logs:*"); }
  std::string logbook(std::string_view id) const { return cat("logbook:", id); }
  std::string events_channel() const { return cat("events:deployments"); }
  // Both a string key (durable, with a TTL) and a pub/sub channel (prompt) of the same name.
  std::string cancel(std::string_view id) const { return cat("cancel:", id); }
  std::string cancel_pattern() const { return pattern("cancel:*"); }
  // A Redis glob that matches `key` alone (ACL key and channel patterns): glob characters escaped.
  static std::string literal(std::string_view key);

 private:
  std::string cat(std::string_view a, std::string_view b = {}, std::string_view c = {}) const {
    std::string out;
    out.reserve(prefix_.size() + a.size() + b.size() + c.size());
    out.append(prefix_).append(a).append(b).append(c);
    return out;
  }
  std::string pattern(std::string_view glob) const;

  std::string prefix_;
};

}  // namespace dp::proto
