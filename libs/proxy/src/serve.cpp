// Serving a request: Host routing through the cached alias and domain lookups, the deployment's
// manifest, the rules (clean URLs, SPA/static 404, previous assets), conditionals, ranges,
// precompressed variants, and the body from the file cache, sendfile or S3; the access log.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "dp/core/log.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/proxy/site_rules.hpp"
#include "proxy_impl.hpp"

namespace dp::proxy {

http::response page(unsigned status, std::string_view title) {
  http::response r(status, "text/html; charset=utf-8",
                   fmt::format("<!doctype html><title>{0}</title><h1>{0}</h1>\n", title));
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

namespace {

// A storage or Redis failure as the visitor sees it: generic, never the key, bucket or body.
http::response backend_error(const dp::error& e) {
  if (e.is(dp::errc::unavailable) || e.is(dp::errc::timeout)) {
    return page(503, "503 Service Unavailable");
  }
  return page(502, "502 Bad Gateway");
}

// A 308 to the same path and query on another origin.
http::response moved(std::string_view origin, const http::request& req) {
  http::response r(308);
  std::string location(origin);
  location.append(req.path());
  if (!req.query_string().empty()) {
    location.append("?").append(req.query_string());
  }
  r.headers.emplace_back("Location", std::move(location));
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

// ACME tokens and ours are base64url.
bool token_syntax(std::string_view t) {
  return !t.empty() && t.size() <= 256 && std::all_of(t.begin(), t.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

constexpr std::string_view acme_prefix = "/.well-known/acme-challenge/";
constexpr std::string_view verify_prefix = "/.well-known/dp-verify/";

bool is_well_known(std::string_view path, const host_target& host) {
  return path.starts_with(acme_prefix) ||
         (path.starts_with(verify_prefix) && host.type == host_target::kind::domain);
}

}  // namespace

asio::awaitable<http::response> proxy::impl::well_known(http::request& req,
                                                        const host_target& host) {
  auto path = req.path();
  bool acme = path.starts_with(acme_prefix);
  auto token = std::string(path.substr(acme ? acme_prefix.size() : verify_prefix.size()));
  if (!token_syntax(token)) {
    co_return page(404, "404 Not Found");
  }
  std::string fqdn = host.name;
  auto query = [this, acme, token,
                fqdn]() -> asio::awaitable<dp::result<std::optional<std::string>>> {
    if (acme) {
      co_return co_await challenges.get(token);
    }
    // The owner proves that this name reaches us: its pending record's token is echoed.
    auto d = co_await domains.get(fqdn);
    if (!d) {
      co_return d.error().is(dp::errc::not_found) ? dp::result<std::optional<std::string>>{}
                                                  : d.error();
    }
    co_return d->token == token ? std::optional<std::string>(token) : std::nullopt;
  };
  auto answer = co_await on_backend<std::optional<std::string>>(std::move(query));
  if (!answer) {
    co_return backend_error(answer.error());
  }
  if (!answer->has_value()) {
    co_return page(404, "404 Not Found");
  }
  http::response r(200, "text/plain", std::move(**answer));
  r.headers.emplace_back("Cache-Control", "no-store");
  co_return r;
}

proxy::impl::domain_policy proxy::impl::decode_policy(const std::string& cached) {
  return {.hsts = cached.starts_with("1"), .redirect = cached.substr(1)};
}

std::optional<proxy::impl::domain_policy> proxy::impl::cached_policy(const std::string& fqdn) {
  std::optional<std::string> cached;
  if (lookups.get("p:" + fqdn, cached) && cached) {
    return decode_policy(*cached);
  }
  return std::nullopt;
}

asio::awaitable<dp::result<proxy::impl::domain_policy>> proxy::impl::policy(std::string fqdn) {
  std::string key = "p:" + fqdn;
  uint64_t gen = lookups.generation();
  // Under the project's name: the primary of any of its domains may change this one's redirect.
  auto project = std::make_shared<std::string>();
  auto query = [this, fqdn, project]() -> asio::awaitable<dp::result<std::optional<std::string>>> {
    auto d = co_await domains.get(fqdn);
    if (!d) {
      // A route set by hand, without a record: no policy.
      if (d.error().is(dp::errc::not_found)) {
        co_return std::optional<std::string>("0");
      }
      co_return d.error();
    }
    *project = d->project;
    std::vector<state::domain> twins;
    if (auto t = co_await domains.get(state::twin_of(fqdn)); t && t->project == d->project) {
      twins.push_back(std::move(*t));
    }
    auto to = state::redirect_for(*d, twins);
    co_return std::optional<std::string>((d->hsts ? "1" : "0") + to.value_or(""));
  };
  auto r = co_await on_backend<std::optional<std::string>>(std::move(query));
  if (!r) {
    co_return r.error();
  }
  lookups.put(key, *r, gen, opts.alias_ttl, std::move(*project));
  co_return decode_policy(**r);
}

asio::awaitable<http::response> proxy::impl::handle(http::request& req, bool secure) {
  auto start = clock::now();
  request_note note;
  http::response res;
  try {
    res = co_await serve(req, note, secure);
    if (note.hsts) {
      res.headers.emplace_back("Strict-Transport-Security", "max-age=31536000");
    }
  } catch (const std::exception& e) {
    // A bug costs this request a 500, never the connection's neighbours.
    log::error("proxy request failed", {{"target", req.target()}, {"error", e.what()}});
    res = page(500, "500 Internal Server Error");
  }
  uint64_t bytes = 0;
  if (req.method() != http::method::head) {
    if (auto* s = std::get_if<std::string>(&res.body)) {
      bytes = s->size();
    } else if (auto* sh = std::get_if<http::shared_body>(&res.body)) {
      bytes = sh->length;
    } else if (auto* f = std::get_if<http::file_body>(&res.body)) {
      bytes = f->length();
    } else if (auto* st = std::get_if<http::stream_body>(&res.body)) {
      bytes = st->length.value_or(0);
    }
  }
  auto took = clock::now() - start;
  m.observe(res.status, bytes, took);
  if (opts.access_log) {
    log::info("access", {{"method", req.method_name()},
                         {"host", req.host().value_or("")},
                         {"target", req.target()},
                         {"status", res.status},
                         {"bytes", bytes},
                         {"ms", std::chrono::duration<double, std::milli>(took).count()},
                         {"cache", note.cache},
                         {"remote", req.remote().host}});
  }
  co_return res;
}

asio::awaitable<http::response> proxy::impl::serve(http::request& req, request_note& note,
                                                   bool secure) {
  if (req.method() != http::method::get && req.method() != http::method::head) {
    auto r = page(405, "405 Method Not Allowed");
    r.headers.emplace_back("Allow", "GET, HEAD");
    co_return r;
  }
  auto host_header = req.host();
  if (!host_header) {
    co_return page(404, "404 Not Found");  // HTTP/1.0 without Host: no site is named
  }
  auto host = parse_host(*host_header, opts.base_domain);
  if (!host) {
    co_return page(400, "400 Bad Request");
  }
  // Tested here, not in the coroutine: other requests do not pay for its frame.
  if (is_well_known(req.path(), *host)) {
    co_return co_await well_known(req, *host);
  }
  auto path = decode_path(req.path(), opts.max_path_bytes);
  if (!path) {
    co_return page(400, "400 Bad Request");
  }
  if (host->type == host_target::kind::none) {
    co_return page(404, "404 Not Found");
  }
  bool custom = host->type == host_target::kind::domain;
  std::string fqdn = custom ? host->name : host->name + "." + opts.base_domain;
  // Once a certificate covers the host, plain HTTP only redirects.
  if (!secure && contexts && contexts->covers(fqdn)) {
    co_return moved("https://" + fqdn, req);
  }
  // A custom domain names an alias label; a subdomain is one.
  std::string label = host->name;
  if (custom) {
    auto cached = cached_lookup(true, host->name);
    dp::result<std::optional<std::string>> d = std::move(cached.value);
    if (!cached.found) {
      d = co_await lookup(true, host->name);
    }
    if (!d) {
      log::warn("proxy: custom domain lookup failed", {{"host", host->name}, {"error", d.error()}});
      co_return backend_error(d.error());
    }
    if (!d->has_value()) {
      co_return page(404, "404 Not Found");
    }
    label = std::move(**d);
    // Routed, so verified: its record says whether to redirect to the primary, and HSTS.
    dp::result<domain_policy> p = domain_policy{};
    if (auto known = cached_policy(host->name)) {
      p = std::move(*known);
    } else {
      p = co_await policy(host->name);
    }
    if (!p) {
      log::warn("proxy: domain record lookup failed", {{"host", host->name}, {"error", p.error()}});
      co_return backend_error(p.error());
    }
    if (!p->redirect.empty()) {
      co_return moved((secure ? "https://" : "http://") + p->redirect, req);
    }
    note.hsts = secure && p->hsts;
  }
  auto cached = cached_lookup(false, label);
  dp::result<std::optional<std::string>> id = std::move(cached.value);
  if (!cached.found) {
    id = co_await lookup(false, label);
  }
  if (!id) {
    log::warn("proxy: alias lookup failed", {{"alias", label}, {"error", id.error()}});
    co_return backend_error(id.error());
  }
  if (!id->has_value()) {
    co_return page(404, "404 Not Found");
  }
  history.served(label, **id);
  auto known_guard = cached_protect(req, label);
  dp::result<std::optional<http::response>> guard = std::move(known_guard.answer);
  if (!known_guard.found) {
    guard = co_await protect(req, label, **id);
  }
  if (!guard) {
    log::warn("proxy: protection lookup failed", {{"alias", label}, {"error", guard.error()}});
    co_return backend_error(guard.error());
  }
  if (*guard) {
    co_return std::move(**guard);
  }
  // A cached manifest without a coroutine frame; get_site loads a missing one.
  dp::result<std::shared_ptr<const site>> s = sites.get(**id);
  if (!*s) {
    s = co_await get_site(**id);
  }
  if (!s) {
    if (s.error().is(dp::errc::not_found)) {
      // No manifest, no site: the commit marker was never written, or is gone.
      bool gone = co_await pruned(**id);
      co_return gone ? page(410, "410 Gone") : page(404, "404 Not Found");
    }
    log::warn("proxy: manifest unavailable", {{"deployment", **id}, {"error", s.error()}});
    co_return backend_error(s.error());
  }
  const site& st = **s;
  if (!st.rules) {
    co_return co_await serve_path(req, note, *s, label, *path);
  }
  // The site's own rules: Basic-Auth paths, redirects and rewrites first, then the path as
  // usual, the header rules on whatever is answered (200, 206, 304, 404, redirects, 401).
  auto known = remembered_rules_for(st, *path, rule_path(*path));
  auto step = rules_before(req, st, *known, label, *path);
  if (step.bare) {
    co_return std::move(*step.answer);
  }
  http::response res;
  if (step.answer) {
    res = std::move(*step.answer);
  } else if (step.file) {
    res = co_await serve_file(req, st, *s, *step.file, step.status, note);
  } else {
    res = co_await serve_path(req, note, *s, label, *path);
  }
  apply_header_edits(known->headers, res);
  co_return res;
}

asio::awaitable<http::response> proxy::impl::serve_path(http::request& req, request_note& note,
                                                        std::shared_ptr<const site> s,
                                                        const std::string& label,
                                                        const clean_path& path) {
  const site& st = *s;
  auto r = resolve(st, path);
  bool missing = r.type == resolution::kind::not_found ||
                 (r.type == resolution::kind::file && r.status == 404);
  if (missing) {
    if (auto old = history.previous(label, opts.previous_assets_grace)) {
      if (auto prev = co_await get_site(*old); prev) {
        // Only an immutable (fingerprinted) file: a page the new deployment removed stays gone.
        const site_file* f = (*prev)->find(path.rel);
        if (f && f->cache_control.find("immutable") != std::string::npos) {
          // The previous deployment may have been deleted since: then the new one's answer.
          auto res = co_await serve_file(req, **prev, *prev, *f, 200, note);
          if (res.status < 500 && res.status != 410) {
            co_return res;
          }
        }
      }
    }
  }
  switch (r.type) {
    case resolution::kind::not_found:
      co_return page(404, "404 Not Found");
    case resolution::kind::redirect: {
      http::response res(308);
      std::string location = encode_path(r.location);
      if (!req.query_string().empty()) {
        location.append("?").append(req.query_string());
      }
      res.headers.emplace_back("Location", std::move(location));
      res.headers.emplace_back("Cache-Control", "no-cache");
      co_return res;
    }
    case resolution::kind::file:
      break;
  }
  co_return co_await serve_file(req, st, s, *r.file, r.status, note);
}

asio::awaitable<http::response> proxy::impl::serve_file(http::request& req, const site& s,
                                                        std::shared_ptr<const site> keep,
                                                        const site_file& f, unsigned status,
                                                        request_note& note) {
  // The representation: a precompressed variant when the client accepts one.
  auto chosen = choose_representation(f, req.header("Accept-Encoding").value_or(""));
  const site_file* rep = chosen.file;
  std::string_view coding = chosen.coding;
  http::response res(status);
  auto& h = res.headers;
  h.reserve(10);
  h.emplace_back("Content-Type", f.content_type);
  if (!f.cache_control.empty()) {
    h.emplace_back("Cache-Control", f.cache_control);
  }
  h.emplace_back("ETag", rep->etag);
  h.emplace_back("Last-Modified", s.last_modified);
  h.emplace_back("X-Content-Type-Options", "nosniff");
  if (chosen.vary) {
    h.emplace_back("Vary", "Accept-Encoding");
  }
  if (!coding.empty()) {
    h.emplace_back("Content-Encoding", std::string(coding));
  }
  uint64_t first = 0;
  uint64_t length = rep->size;
  if (status == 200) {
    h.emplace_back("Accept-Ranges", "bytes");
    // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    if (auto inm = req.header("If-None-Match")) {
      if (etag_matches(*inm, rep->etag)) {
        res.status = 304;
        co_return res;
      }
    } else if (auto ims = req.header("If-Modified-Since")) {
      auto t = parse_http_date(*ims);
      if (t && s.created_at <= *t) {
        res.status = 304;
        co_return res;
      }
    }
    auto range = req.header("Range");
    auto if_range = req.header("If-Range");
    // A stale If-Range (another ETag or date) asks for the whole representation.
    if (range && (!if_range || *if_range == rep->etag || *if_range == s.last_modified)) {
      auto rr = parse_range(*range, rep->size);
      if (rr.type == range_result::kind::unsatisfiable) {
        res.status = 416;
        h.emplace_back("Content-Range", fmt::format("bytes */{}", rep->size));
        co_return res;
      }
      if (rr.type == range_result::kind::partial) {
        res.status = 206;
        first = rr.first;
        length = rr.last - rr.first + 1;
        h.emplace_back("Content-Range",
                       fmt::format("bytes {}-{}/{}", rr.first, rr.last, rep->size));
      }
    }
  }
  bool head_only = req.method() == http::method::head;
  // Most bodies are ready at once (a HEAD, an empty file, a cache hit): no coroutine frame.
  if (auto ready = ready_body(keep, *rep, first, length, head_only, note)) {
    res.body = std::move(*ready);
    co_return res;
  }
  auto body = co_await body_for(std::move(keep), *rep, first, length, note);
  // A manifest cached before the retention policy pruned the deployment.
  if (!body && body.error().is(dp::errc::not_found)) {
    // (g++ 12 fails on a co_await inside the condition.)
    bool gone = co_await pruned(s.deployment_id);
    if (gone) {
      co_return page(410, "410 Gone");
    }
  }
  if (!body) {
    log::warn("proxy: object unavailable",
              {{"deployment", s.deployment_id}, {"path", rep->path}, {"error", body.error()}});
    co_return backend_error(body.error());
  }
  res.body = std::move(body->body);
  co_return res;
}

bool proxy::impl::cacheable(const site_file& f) const {
  // A local store's larger files go out with sendfile from its own files in the page cache;
  // only small ones are worth memory (no open and fstat per request).
  bool local_store = opts.storage.kind == dp::storage::storage_url::scheme::file;
  size_t memory_limit = local_store ? std::min(opts.cache_object_limit, opts.sendfile_min_bytes)
                                    : opts.cache_object_limit;
  return opts.cache_bytes > 0 && f.size <= memory_limit;
}

std::optional<http::response::body_type> proxy::impl::ready_body(
    const std::shared_ptr<const site>& s, const site_file& f, uint64_t first, uint64_t length,
    bool head_only, request_note& note) {
  if (head_only) {
    // The server writes the head only; the length is the manifest's, nothing is fetched.
    return http::stream_body{
        [](std::span<char>) -> asio::awaitable<dp::result<size_t>> { co_return size_t{0}; },
        length};
  }
  if (length == 0) {
    return std::string();
  }
  if (!cacheable(f)) {
    return std::nullopt;
  }
  auto data = files.get(s->deployment_id + '\n' + f.path);
  if (!data) {
    return std::nullopt;
  }
  m.cache_hits.fetch_add(1, std::memory_order_relaxed);
  note.cache = "hit";
  // The cached entry itself, not a copy: it lives as long as the response needs it.
  return cached_file::body(std::move(data), static_cast<size_t>(first),
                           static_cast<size_t>(length));
}

asio::awaitable<dp::result<http::response>> proxy::impl::body_for(std::shared_ptr<const site> s,
                                                                  const site_file& f,
                                                                  uint64_t first, uint64_t length,
                                                                  request_note& note) {
  http::response out;
  // ready_body found no cache entry: fetched whole and kept.
  if (cacheable(f)) {
    std::string cache_key = s->deployment_id + '\n' + f.path;
    m.cache_misses.fetch_add(1, std::memory_order_relaxed);
    note.cache = "miss";
    uint64_t expected = f.size;
    auto fetch = [this, key = proto::output_key(s->deployment_id, f.path),
                  expected]() -> asio::awaitable<dp::result<std::string>> {
      m.object_gets.fetch_add(1, std::memory_order_relaxed);
      dp::storage::get_options whole;
      auto got = co_await storage->get(key, std::move(whole));
      if (!got) {
        co_return got.error();
      }
      // The manifest is the contract; an object of another size is not what it describes.
      if (got->info.size != expected) {
        co_return dp::make_error(dp::errc::protocol,
                                 "object size {} differs from the manifest's {}", got->info.size,
                                 expected);
      }
      co_return co_await got->read_all();
    };
    auto fetched = co_await on_backend<std::string>(std::move(fetch));
    if (!fetched) {
      co_return fetched.error();
    }
    if (fetched->size() != expected) {
      co_return dp::make_error(dp::errc::protocol, "object body is {} bytes, expected {}",
                               fetched->size(), expected);
    }
    auto data = cached_file::make(std::move(*fetched), expected > opts.sendfile_min_bytes);
    files.put(cache_key, data, data->size() + cache_key.size() + 64);
    out.body =
        cached_file::body(std::move(data), static_cast<size_t>(first), static_cast<size_t>(length));
    co_return out;
  }
  std::string key = proto::output_key(s->deployment_id, f.path);
  // The file backend: zero-copy with sendfile.
  if (auto local = storage->local_path(key)) {
    m.object_gets.fetch_add(1, std::memory_order_relaxed);
    auto fb = http::file_body::open(local->string(), first, length);
    if (!fb) {
      co_return fb.error();
    }
    if (fb->length() != length) {
      co_return dp::make_error(dp::errc::protocol, "file is shorter than the manifest says");
    }
    out.body = std::move(*fb);
    co_return out;
  }
  // S3: streamed piece by piece as the client takes it.
  dp::storage::get_options go;
  if (first != 0 || length != f.size) {
    go.range = dp::storage::byte_range{first, first + length - 1};
  }
  auto open = [this, key, go]() -> asio::awaitable<dp::result<dp::storage::get_result>> {
    m.object_gets.fetch_add(1, std::memory_order_relaxed);
    co_return co_await storage->get(key, go);
  };
  auto got = co_await on_backend<dp::storage::get_result>(std::move(open));
  if (!got) {
    co_return got.error();
  }
  if (got->length != length) {
    co_return dp::make_error(dp::errc::protocol, "object length {} differs from the manifest's {}",
                             got->length, length);
  }
  // The reader belongs to the backend strand: it is used and destroyed there.
  backend_t ex = backend;
  std::shared_ptr<dp::storage::object_reader> reader(
      got->body.release(), [ex](dp::storage::object_reader* r) {
        asio::post(ex, [p = std::unique_ptr<dp::storage::object_reader>(r)] {});
      });
  out.body =
      http::stream_body{[this, reader](std::span<char> buf) -> asio::awaitable<dp::result<size_t>> {
                          auto read = [reader, buf]() -> asio::awaitable<dp::result<size_t>> {
                            co_return co_await reader->read_some(buf);
                          };
                          co_return co_await on_backend<size_t>(std::move(read));
                        },
                        length};
  co_return out;
}

proxy::impl::cached_route proxy::impl::cached_lookup(bool domain, const std::string& name) {
  cached_route r;
  r.found = lookups.get((domain ? "d:" : "a:") + name, r.value);
  return r;
}

asio::awaitable<dp::result<std::optional<std::string>>> proxy::impl::lookup(bool domain,
                                                                            std::string name) {
  std::string key = (domain ? "d:" : "a:") + name;
  uint64_t gen = lookups.generation();
  auto query = [this, domain, name]() -> asio::awaitable<dp::result<std::optional<std::string>>> {
    if (domain) {
      co_return co_await records.resolve_domain(name);
    }
    co_return co_await records.resolve_alias(name);
  };
  auto r = co_await on_backend<std::optional<std::string>>(std::move(query));
  if (r) {
    lookups.put(key, *r, gen, opts.alias_ttl);
  }
  co_return r;
}

asio::awaitable<bool> proxy::impl::pruned(std::string id) {
  auto fetch = [this, id]() -> asio::awaitable<dp::result<proto::deployment>> {
    co_return co_await records.get_deployment(id);
  };
  auto d = co_await on_backend<proto::deployment>(std::move(fetch));
  co_return d && d->pruned_at;
}

asio::awaitable<dp::result<std::string>> proxy::impl::read_metadata(std::string key) {
  auto fetch = [this, key = std::move(key)]() -> asio::awaitable<dp::result<std::string>> {
    m.manifest_gets.fetch_add(1, std::memory_order_relaxed);
    dp::storage::get_options whole;
    auto got = co_await storage->get(key, std::move(whole));
    if (!got) {
      co_return got.error();
    }
    co_return co_await got->read_all();
  };
  co_return co_await on_backend<std::string>(std::move(fetch));
}

asio::awaitable<dp::result<std::shared_ptr<const site>>> proxy::impl::get_site(std::string id) {
  if (auto s = sites.get(id)) {
    co_return s;
  }
  auto text = co_await read_metadata(proto::manifest_key(id));
  if (!text) {
    co_return text.error();
  }
  auto m = proto::parse_manifest(std::string_view(*text));
  if (!m) {
    co_return dp::make_error(dp::errc::protocol, "manifest of {} is invalid: {}", id,
                             m.error().message);
  }
  if (m->deployment_id != id) {
    co_return dp::make_error(dp::errc::protocol, "manifest of {} names deployment {}", id,
                             m->deployment_id);
  }
  site loaded = make_site(*m);
  if (m->rules) {
    auto rules = co_await get_rules(id, *m->rules);
    if (!rules) {
      co_return rules.error();
    }
    loaded.rules = std::move(*rules);
    if (loaded.rules) {
      loaded.rule_memo = std::make_shared<lru_cache<path_rules>>(site_rule_memo_bytes);
    }
  }
  auto s = std::make_shared<const site>(std::move(loaded));
  sites.put(id, s, 1);
  co_return s;
}

}  // namespace dp::proxy
