#pragma once
// Private to libs/proxy: the proxy's state. serve.cpp answers requests (routing, manifests,
// files); metrics.cpp counts and renders /metrics; proxy.cpp starts, follows events and stops.

#include <boost/asio.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "caches.hpp"
#include "credentials.hpp"
#include "dp/http/server.hpp"
#include "dp/proxy/auth_limit.hpp"
#include "dp/proxy/cached_file.hpp"
#include "dp/proxy/lru.hpp"
#include "dp/proxy/proxy.hpp"
#include "dp/proxy/rules.hpp"
#include "dp/proxy/site_rules.hpp"
#include "dp/redis/client.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/state/domains.hpp"
#include "dp/state/records.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/tls/cert_store.hpp"
#include "dp/tls/server_contexts.hpp"

namespace dp::proxy {

namespace asio = boost::asio;
using backend_t = asio::strand<asio::io_context::executor_type>;

// Counters for /metrics; relaxed atomics, since each is read on its own.
struct metrics {
  static constexpr std::array<double, 11> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                 0.05,   0.1,   0.25,   0.5,   1.0};
  std::array<std::atomic<uint64_t>, 600> by_status{};
  std::array<std::atomic<uint64_t>, bounds.size() + 1> buckets{};
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> micros{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> cache_hits{0};
  std::atomic<uint64_t> cache_misses{0};
  std::atomic<uint64_t> object_gets{0};    // requests to storage for a file's bytes
  std::atomic<uint64_t> manifest_gets{0};  // requests to storage for a manifest

  void observe(unsigned status, uint64_t body_bytes, clock::duration took);
};

// What the access log and the metrics learn about one request.
struct request_note {
  const char* cache = "-";
  bool hsts = false;  // a secure request for a domain with HSTS on
};

// A small HTML page with `Cache-Control: no-store` (serve.cpp).
http::response page(unsigned status, std::string_view title);
// 401 with `WWW-Authenticate: Basic realm="<realm>"` (protection.cpp).
http::response unauthorized(std::string_view realm);

struct proxy::impl {
  impl(asio::io_context& io, options o)
      : ioc(io),
        opts(std::move(o)),
        backend(asio::make_strand(io)),
        redis(backend, opts.redis),
        records(redis, opts.keys),
        domains(redis, opts.keys),
        challenges(redis, opts.keys),
        events(backend, opts.redis),
        sites(std::max<size_t>(opts.manifest_cache_count, 1)),
        files(opts.cache_bytes),
        guesses({.max_failures = opts.auth_failures, .window = opts.auth_window}) {}

  // `secure`: the request came over TLS (secure_server).
  asio::awaitable<http::response> handle(http::request& req, bool secure);
  asio::awaitable<http::response> serve(http::request& req, request_note& note, bool secure);
  // /.well-known/acme-challenge/<token> (any Host) and /.well-known/dp-verify/<token> (a custom
  // domain's ownership check): called only for those paths.
  asio::awaitable<http::response> well_known(http::request& req, const host_target& host);
  // A custom domain's HSTS flag and the primary its apex/www twin redirects to (cached as the
  // lookups are).
  struct domain_policy {
    bool hsts = false;
    std::string redirect;
  };
  // policy() when the cache knows it, without a coroutine frame; nullopt: ask policy().
  std::optional<domain_policy> cached_policy(const std::string& fqdn);
  // A policy is cached as "<0|1: hsts><redirect fqdn>".
  static domain_policy decode_policy(const std::string& cached);
  asio::awaitable<dp::result<domain_policy>> policy(std::string fqdn);
  // The certificates: every one in the store at start and after a gap, one by one on events.
  asio::awaitable<void> load_certificate(std::string name);
  asio::awaitable<void> load_certificates();
  dp::result<void> start_tls();
  // A clean path of a deployment: resolution, the previous deployment's assets, the file.
  asio::awaitable<http::response> serve_path(http::request& req, request_note& note,
                                             std::shared_ptr<const site> s,
                                             const std::string& label, const clean_path& path);
  // What a site's own rules make of a request before anything is served (serve_rules.cpp):
  // an answer of their own (a redirect, 401, 429, a rewrite to nothing), a file to serve instead
  // (a rewrite), or neither (the path as usual). The caller adds the header rules to whatever is
  // answered, unless `bare`. Not a coroutine: no frame of its own on the hot path.
  struct rules_step {
    std::optional<http::response> answer;
    bool bare = false;
    const site_file* file = nullptr;
    unsigned status = 200;
  };
  rules_step rules_before(const http::request& req, const site& st, const path_rules& pr,
                          const std::string& label, const clean_path& path);
  // The compiled rules a manifest names: a storage error fails the site's load (retried on the
  // next request); a file that does not parse is logged and the site is served without rules.
  asio::awaitable<dp::result<std::shared_ptr<const siteconfig::rule_set>>> get_rules(
      std::string id, std::string name);
  asio::awaitable<http::response> serve_file(http::request& req, const site& s,
                                             std::shared_ptr<const site> keep, const site_file& f,
                                             unsigned status, request_note& note);
  // Whether a file of the site is kept in the file cache (small enough, a cache configured).
  bool cacheable(const site_file& f) const;
  // The body when it is there without waiting: a HEAD's, an empty one, a cache hit; else
  // nullopt, and body_for fetches it.
  std::optional<http::response::body_type> ready_body(const std::shared_ptr<const site>& s,
                                                      const site_file& f, uint64_t first,
                                                      uint64_t length, bool head_only,
                                                      request_note& note);
  asio::awaitable<dp::result<http::response>> body_for(std::shared_ptr<const site> s,
                                                       const site_file& f, uint64_t first,
                                                       uint64_t length, request_note& note);
  // Where a custom domain (`domain`) or an alias label routes, as the cache knows it, without a
  // coroutine frame: `found` false when it does not (then lookup() asks Redis); a found `value`
  // of nullopt is a cached "routes nowhere".
  struct cached_route {
    bool found = false;
    std::optional<std::string> value;
  };
  cached_route cached_lookup(bool domain, const std::string& name);
  // A cache miss: Redis's answer (on the backend strand), cached unless an invalidation raced it.
  asio::awaitable<dp::result<std::optional<std::string>>> lookup(bool domain, std::string name);
  // The project's protection for a host serving `label`: a 401 response unless the request
  // carries its credentials, nullopt when it may go on (protection.cpp). cached_protect answers
  // without a coroutine frame when the cache knows the setting (`found`); protect() asks Redis.
  struct cached_guard {
    bool found = false;
    std::optional<http::response> answer;
  };
  cached_guard cached_protect(const http::request& req, std::string_view label);
  asio::awaitable<dp::result<std::optional<http::response>>> protect(const http::request& req,
                                                                     std::string label,
                                                                     std::string deployment_id);
  // The answer for a cached setting ("<username>\n<password hash>", or none).
  std::optional<http::response> check_guard(const http::request& req, std::string_view label,
                                            const std::optional<std::string>& guard);
  // Nullopt when the request's Basic credentials are these (remembered once verified); else the
  // answer: 401, or 429 when its client is over the failed-guess limit.
  std::optional<http::response> check_basic(const http::request& req, std::string_view realm,
                                            std::string_view username,
                                            std::string_view password_hash);
  // In front of a password hash: 429 (Retry-After) while the request's client is over the
  // failed-guess limit, else nullopt; guess_failed() counts one wrong guess.
  std::optional<http::response> over_guess_limit(const http::request& req);
  void guess_failed(const http::request& req);
  asio::awaitable<dp::result<std::shared_ptr<const site>>> get_site(std::string id);
  // A small object read whole on the backend strand (a manifest, the site rules), counted in
  // manifest_gets.
  asio::awaitable<dp::result<std::string>> read_metadata(std::string key);
  // Whether the retention policy pruned the deployment: its URL answers 410 Gone (as Vercel
  // answers an expired deployment), where a missing one answers 404. Asked only when files are
  // missing.
  asio::awaitable<bool> pruned(std::string id);
  asio::awaitable<void> follow_events();
  std::string metrics_text() const;

  // Runs f on the backend strand (where Redis and storage live) and resumes on the caller's.
  template <class T, class F>
  asio::awaitable<dp::result<T>> on_backend(F f) {
    return asio::co_spawn(backend, std::move(f), asio::use_awaitable);
  }

  asio::io_context& ioc;
  options opts;
  backend_t backend;
  dp::redis::client redis;
  dp::state::records records;
  dp::state::domains domains;
  dp::tls::challenge_store challenges;
  std::optional<dp::tls::cert_store> certs;            // with a platform key
  std::shared_ptr<dp::tls::server_contexts> contexts;  // with a TLS listener
  dp::redis::subscriber events;
  std::shared_ptr<dp::storage::object_store> storage;
  lru_cache<site> sites;
  lru_cache<cached_file> files;
  lookup_cache lookups;
  verified_credentials credentials;
  auth_failure_limit guesses;
  alias_history history;
  metrics m;
  std::unique_ptr<http::server> server;
  std::unique_ptr<http::server> admin;
  std::unique_ptr<http::server> secure_server;  // PROXY_TLS_LISTEN, on contexts->front()
};

}  // namespace dp::proxy
