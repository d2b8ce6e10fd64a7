#include "dp/proxy/proxy.hpp"

#include <boost/asio.hpp>

#include <fmt/format.h>

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"
#include "dp/http/server.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/proxy/cached_file.hpp"
#include "dp/proxy/lru.hpp"
#include "dp/proxy/rules.hpp"
#include "dp/redis/client.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/state/store.hpp"
#include "dp/storage/object_store.hpp"

namespace dp::proxy {
namespace {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;
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

  void observe(unsigned status, uint64_t body_bytes, clock::duration took) {
    by_status[status < by_status.size() ? status : 0].fetch_add(1, std::memory_order_relaxed);
    bytes.fetch_add(body_bytes, std::memory_order_relaxed);
    double s = std::chrono::duration<double>(took).count();
    size_t b = 0;
    while (b < bounds.size() && s > bounds[b]) {
      ++b;
    }
    buckets[b].fetch_add(1, std::memory_order_relaxed);
    count.fetch_add(1, std::memory_order_relaxed);
    micros.fetch_add(static_cast<uint64_t>(s * 1e6), std::memory_order_relaxed);
  }
};

// Alias and custom-domain lookups, positive and negative, with a TTL backstop. Every
// invalidation bumps the generation, so a lookup that started before it does not store its
// (possibly stale) answer afterwards.
class lookup_cache {
 public:
  struct entry {
    std::optional<std::string> value;
    clock::time_point expires;
  };

  bool get(const std::string& key, std::optional<std::string>& out) {
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end() || it->second.expires <= clock::now()) {
      return false;
    }
    out = it->second.value;
    return true;
  }
  uint64_t generation() {
    std::lock_guard lock(mu_);
    return gen_;
  }
  void put(const std::string& key, std::optional<std::string> value, uint64_t gen,
           std::chrono::milliseconds ttl) {
    std::lock_guard lock(mu_);
    if (gen != gen_) {
      return;
    }
    // Random host names must not grow memory without bound.
    if (map_.size() >= 100'000) {
      map_.clear();
    }
    map_[key] = entry{std::move(value), clock::now() + ttl};
  }
  void erase(const std::string& key) {
    std::lock_guard lock(mu_);
    ++gen_;
    map_.erase(key);
  }
  void clear() {
    std::lock_guard lock(mu_);
    ++gen_;
    map_.clear();
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, entry> map_;
  uint64_t gen_ = 0;
};

// The deployment each alias served before its latest switch, and when it switched. A page loaded
// before a redeploy or a rollback still asks for its own fingerprinted assets, which the new
// deployment may not have (version skew): the previous deployment answers for those for a while.
class alias_history {
 public:
  // Called with every resolved alias: a new id for an alias is a switch.
  void served(const std::string& alias, const std::string& id) {
    std::lock_guard lock(mu_);
    auto [it, added] = map_.try_emplace(alias);
    if (added && map_.size() > 100'000) {
      map_.clear();  // bounded like the lookups; at worst a recent switch is forgotten
      it = map_.try_emplace(alias).first;
    }
    auto& e = it->second;
    if (e.current != id) {
      e.previous = std::exchange(e.current, id);
      e.switched = clock::now();
    }
  }
  std::optional<std::string> previous(const std::string& alias, clock::duration grace) {
    std::lock_guard lock(mu_);
    auto it = map_.find(alias);
    if (it == map_.end() || it->second.previous.empty() ||
        clock::now() - it->second.switched > grace) {
      return std::nullopt;
    }
    return it->second.previous;
  }

 private:
  struct entry {
    std::string current;
    std::string previous;
    clock::time_point switched;
  };
  std::mutex mu_;
  std::unordered_map<std::string, entry> map_;
};

// What the access log and the metrics learn about one request.
struct request_note {
  const char* cache = "-";
};

http::response page(unsigned status, std::string_view title) {
  http::response r(status, "text/html; charset=utf-8",
                   fmt::format("<!doctype html><title>{0}</title><h1>{0}</h1>\n", title));
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

// A storage or Redis failure as the visitor sees it: generic, never the key, bucket or body.
http::response backend_error(const dp::error& e) {
  if (e.is(dp::errc::unavailable) || e.is(dp::errc::timeout)) {
    return page(503, "503 Service Unavailable");
  }
  return page(502, "502 Bad Gateway");
}

}  // namespace

struct proxy::impl {
  impl(asio::io_context& io, options o)
      : ioc(io),
        opts(std::move(o)),
        backend(asio::make_strand(io)),
        redis(backend, opts.redis),
        store(redis, opts.keys),
        events(backend, opts.redis),
        sites(std::max<size_t>(opts.manifest_cache_count, 1)),
        files(opts.cache_bytes) {}

  asio::awaitable<http::response> handle(http::request& req);
  asio::awaitable<http::response> serve(http::request& req, request_note& note);
  asio::awaitable<http::response> serve_file(http::request& req, const site& s,
                                             std::shared_ptr<const site> keep, const site_file& f,
                                             unsigned status, request_note& note);
  asio::awaitable<dp::result<http::response>> body_for(std::shared_ptr<const site> s,
                                                       const site_file& f, uint64_t first,
                                                       uint64_t length, bool head_only,
                                                       request_note& note);
  asio::awaitable<dp::result<std::optional<std::string>>> lookup(bool domain, std::string name);
  asio::awaitable<dp::result<std::shared_ptr<const site>>> get_site(std::string id);
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
  dp::state::store store;
  dp::redis::subscriber events;
  std::shared_ptr<dp::storage::object_store> storage;
  lru_cache<site> sites;
  lru_cache<cached_file> files;
  lookup_cache lookups;
  alias_history history;
  metrics m;
  std::unique_ptr<http::server> server;
  std::unique_ptr<http::server> admin;
};

asio::awaitable<http::response> proxy::impl::handle(http::request& req) {
  auto start = clock::now();
  request_note note;
  http::response res;
  try {
    res = co_await serve(req, note);
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

asio::awaitable<http::response> proxy::impl::serve(http::request& req, request_note& note) {
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
  auto path = decode_path(req.path(), opts.max_path_bytes);
  if (!path) {
    co_return page(400, "400 Bad Request");
  }
  if (host->type == host_target::kind::none) {
    co_return page(404, "404 Not Found");
  }
  // A custom domain names an alias label; a subdomain is one.
  std::string label = host->name;
  if (host->type == host_target::kind::domain) {
    auto d = co_await lookup(true, host->name);
    if (!d) {
      log::warn("proxy: custom domain lookup failed", {{"host", host->name}, {"error", d.error()}});
      co_return backend_error(d.error());
    }
    if (!d->has_value()) {
      co_return page(404, "404 Not Found");
    }
    label = std::move(**d);
  }
  auto id = co_await lookup(false, label);
  if (!id) {
    log::warn("proxy: alias lookup failed", {{"alias", label}, {"error", id.error()}});
    co_return backend_error(id.error());
  }
  if (!id->has_value()) {
    co_return page(404, "404 Not Found");
  }
  history.served(label, **id);
  auto s = co_await get_site(**id);
  if (!s) {
    if (s.error().is(dp::errc::not_found)) {
      // No manifest, no site: the commit marker was never written.
      co_return page(404, "404 Not Found");
    }
    log::warn("proxy: manifest unavailable", {{"deployment", **id}, {"error", s.error()}});
    co_return backend_error(s.error());
  }
  const site& st = **s;
  auto r = resolve(st, *path);
  bool missing = r.type == resolution::kind::not_found ||
                 (r.type == resolution::kind::file && r.status == 404);
  if (missing) {
    if (auto old = history.previous(label, opts.previous_assets_grace)) {
      if (auto prev = co_await get_site(*old); prev) {
        // Only an immutable (fingerprinted) file: a page the new deployment removed stays gone.
        const site_file* f = (*prev)->find(path->rel);
        if (f && f->cache_control.find("immutable") != std::string::npos) {
          // The previous deployment may have been deleted since: then the new one's answer.
          auto res = co_await serve_file(req, **prev, *prev, *f, 200, note);
          if (res.status < 500) {
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
  co_return co_await serve_file(req, st, *s, *r.file, r.status, note);
}

asio::awaitable<http::response> proxy::impl::serve_file(http::request& req, const site& s,
                                                        std::shared_ptr<const site> keep,
                                                        const site_file& f, unsigned status,
                                                        request_note& note) {
  // The representation: a precompressed variant when the client accepts one.
  const site_file* rep = &f;
  std::string_view coding;
  bool variants = f.br != nullptr || f.gzip != nullptr;
  if (variants) {
    coding = negotiate_encoding(req.header("Accept-Encoding").value_or(""), f.br != nullptr,
                                f.gzip != nullptr);
    rep = coding == "br" ? f.br : coding == "gzip" ? f.gzip : &f;
  }
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
  if (variants) {
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
  auto body = co_await body_for(std::move(keep), *rep, first, length,
                                req.method() == http::method::head, note);
  if (!body) {
    log::warn("proxy: object unavailable",
              {{"deployment", s.deployment_id}, {"path", rep->path}, {"error", body.error()}});
    co_return backend_error(body.error());
  }
  res.body = std::move(body->body);
  co_return res;
}

asio::awaitable<dp::result<http::response>> proxy::impl::body_for(std::shared_ptr<const site> s,
                                                                  const site_file& f,
                                                                  uint64_t first, uint64_t length,
                                                                  bool head_only,
                                                                  request_note& note) {
  http::response out;
  if (head_only) {
    // The server writes the head only; the length is the manifest's, nothing is fetched.
    out.body = http::stream_body{
        [](std::span<char>) -> asio::awaitable<dp::result<size_t>> { co_return size_t{0}; },
        length};
    co_return out;
  }
  if (length == 0) {
    co_return out;
  }
  std::string key = proto::output_key(s->deployment_id, f.path);
  // A local store's larger files go out with sendfile from its own files in the page cache;
  // only small ones are worth memory (no open and fstat per request).
  bool local_store = opts.storage.kind == dp::storage::storage_url::scheme::file;
  size_t memory_limit = local_store ? std::min(opts.cache_object_limit, opts.sendfile_min_bytes)
                                    : opts.cache_object_limit;
  if (opts.cache_bytes > 0 && f.size <= memory_limit) {
    std::string cache_key = s->deployment_id + '\n' + f.path;
    auto data = files.get(cache_key);
    if (data) {
      m.cache_hits.fetch_add(1, std::memory_order_relaxed);
      note.cache = "hit";
    } else {
      m.cache_misses.fetch_add(1, std::memory_order_relaxed);
      note.cache = "miss";
      uint64_t expected = f.size;
      auto fetch = [this, key, expected]() -> asio::awaitable<dp::result<std::string>> {
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
      data = cached_file::make(std::move(*fetched), expected > opts.sendfile_min_bytes);
      files.put(cache_key, data, data->size() + cache_key.size() + 64);
    }
    // The cached entry itself, not a copy: it lives as long as the response needs it.
    out.body =
        cached_file::body(std::move(data), static_cast<size_t>(first), static_cast<size_t>(length));
    co_return out;
  }
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

asio::awaitable<dp::result<std::optional<std::string>>> proxy::impl::lookup(bool domain,
                                                                            std::string name) {
  std::string key = (domain ? "d:" : "a:") + name;
  std::optional<std::string> cached;
  if (lookups.get(key, cached)) {
    co_return cached;
  }
  uint64_t gen = lookups.generation();
  auto query = [this, domain, name]() -> asio::awaitable<dp::result<std::optional<std::string>>> {
    if (domain) {
      co_return co_await store.resolve_domain(name);
    }
    co_return co_await store.resolve_alias(name);
  };
  auto r = co_await on_backend<std::optional<std::string>>(std::move(query));
  if (r) {
    lookups.put(key, *r, gen, opts.alias_ttl);
  }
  co_return r;
}

asio::awaitable<dp::result<std::shared_ptr<const site>>> proxy::impl::get_site(std::string id) {
  if (auto s = sites.get(id)) {
    co_return s;
  }
  std::string key = proto::manifest_key(id);
  auto fetch = [this, key]() -> asio::awaitable<dp::result<std::string>> {
    m.manifest_gets.fetch_add(1, std::memory_order_relaxed);
    dp::storage::get_options whole;
    auto got = co_await storage->get(key, std::move(whole));
    if (!got) {
      co_return got.error();
    }
    co_return co_await got->read_all();
  };
  auto text = co_await on_backend<std::string>(std::move(fetch));
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
  auto s = std::make_shared<const site>(make_site(*m));
  sites.put(id, s, 1);
  co_return s;
}

asio::awaitable<void> proxy::impl::follow_events() {
  std::vector<std::string> channels{opts.keys.events_channel()};
  auto subscribed = co_await events.subscribe(std::move(channels));
  if (!subscribed) {
    // The subscriber keeps the channel requested and subscribes when Redis is back.
    log::warn("proxy: events subscription pending; alias changes rely on the TTL until then",
              {{"error", subscribed.error()}});
  }
  // Anything looked up before the subscription may have missed its event.
  lookups.clear();
  for (;;) {
    auto msg = co_await events.next();
    if (!msg) {
      if (!msg.error().is(dp::errc::canceled)) {
        log::warn("proxy: events follower stopped", {{"error", msg.error()}});
      }
      co_return;
    }
    if (msg->kind == dp::redis::message_kind::gap) {
      lookups.clear();
      continue;
    }
    auto ev = proto::parse_deployment_event(std::string_view(msg->payload));
    if (!ev) {
      log::debug("proxy: unreadable event ignored", {{"error", ev.error()}});
      continue;
    }
    if (auto* a = std::get_if<proto::alias_event>(&*ev)) {
      lookups.erase("a:" + a->alias);
    }
  }
}

std::string proxy::impl::metrics_text() const {
  std::string out;
  auto add = [&](std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} {2}\n", name, help, type);
  };
  add("dp_proxy_requests_total", "counter", "Requests answered, by HTTP status.");
  for (size_t code = 0; code < m.by_status.size(); ++code) {
    if (uint64_t n = m.by_status[code].load(std::memory_order_relaxed)) {
      fmt::format_to(std::back_inserter(out), "dp_proxy_requests_total{{status=\"{}\"}} {}\n", code,
                     n);
    }
  }
  add("dp_proxy_response_body_bytes_total", "counter", "Body bytes answered.");
  fmt::format_to(std::back_inserter(out), "dp_proxy_response_body_bytes_total {}\n",
                 m.bytes.load(std::memory_order_relaxed));
  add("dp_proxy_cache_hits_total", "counter", "Small-file cache hits.");
  fmt::format_to(std::back_inserter(out), "dp_proxy_cache_hits_total {}\n",
                 m.cache_hits.load(std::memory_order_relaxed));
  add("dp_proxy_cache_misses_total", "counter", "Small-file cache misses (fetched from storage).");
  fmt::format_to(std::back_inserter(out), "dp_proxy_cache_misses_total {}\n",
                 m.cache_misses.load(std::memory_order_relaxed));
  add("dp_proxy_cache_bytes", "gauge", "Bytes held by the small-file cache.");
  fmt::format_to(std::back_inserter(out), "dp_proxy_cache_bytes {}\n", files.used());
  add("dp_proxy_storage_gets_total", "counter",
      "Requests to storage: a file's bytes (object) or a deployment's manifest.");
  fmt::format_to(std::back_inserter(out),
                 "dp_proxy_storage_gets_total{{what=\"object\"}} {}\n"
                 "dp_proxy_storage_gets_total{{what=\"manifest\"}} {}\n",
                 m.object_gets.load(std::memory_order_relaxed),
                 m.manifest_gets.load(std::memory_order_relaxed));
  add("dp_proxy_request_duration_seconds", "histogram",
      "Time from the parsed request to the response head being ready.");
  uint64_t cumulative = 0;
  for (size_t b = 0; b < m.buckets.size(); ++b) {
    cumulative += m.buckets[b].load(std::memory_order_relaxed);
    if (b < metrics::bounds.size()) {
      fmt::format_to(std::back_inserter(out),
                     "dp_proxy_request_duration_seconds_bucket{{le=\"{}\"}} {}\n",
                     metrics::bounds[b], cumulative);
    } else {
      fmt::format_to(std::back_inserter(out),
                     "dp_proxy_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", cumulative);
    }
  }
  fmt::format_to(std::back_inserter(out), "dp_proxy_request_duration_seconds_sum {}\n",
                 static_cast<double>(m.micros.load(std::memory_order_relaxed)) / 1e6);
  fmt::format_to(std::back_inserter(out), "dp_proxy_request_duration_seconds_count {}\n",
                 m.count.load(std::memory_order_relaxed));
  return out;
}

proxy::proxy(asio::io_context& ioc, options opts)
    : impl_(std::make_shared<impl>(ioc, std::move(opts))) {}

proxy::~proxy() = default;

dp::result<void> proxy::start() {
  auto& i = *impl_;
  auto st = dp::storage::open_storage(i.backend, i.opts.storage, i.opts.credentials, i.opts.store);
  if (!st) {
    return st.error();
  }
  i.storage = std::move(*st);
  // A quarter of the descriptors may hold cached files; the rest are for connections.
  if (rlimit nofile{}; ::getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    cached_file::set_memfd_budget(static_cast<size_t>(nofile.rlim_cur / 4));
  }
  http::router routes;
  impl* self = impl_.get();
  routes.fallback([self](http::request& req) { return self->handle(req); });
  i.server = std::make_unique<http::server>(i.ioc, i.opts.server, std::move(routes));
  if (auto r = i.server->start(); !r) {
    return r.error();
  }
  http::router admin_routes;
  admin_routes.get("/metrics", [self](http::request&) -> asio::awaitable<http::response> {
    co_return http::response(200, "text/plain; version=0.0.4", self->metrics_text());
  });
  admin_routes.get("/healthz", [](http::request&) -> asio::awaitable<http::response> {
    co_return http::response(200, "text/plain", "ok\n");
  });
  http::server_options ao;
  ao.listen = i.opts.admin_listen;
  i.admin = std::make_unique<http::server>(i.ioc, ao, std::move(admin_routes));
  if (auto r = i.admin->start(); !r) {
    return r.error();
  }
  dp::spawn(i.backend, i.follow_events(), "proxy event follower");
  return {};
}

uint16_t proxy::port() const {
  return impl_->server ? impl_->server->port() : 0;
}

uint16_t proxy::admin_port() const {
  return impl_->admin ? impl_->admin->port() : 0;
}

void proxy::stop(std::chrono::milliseconds drain, std::function<void()> done) {
  auto self = impl_;
  auto left = std::make_shared<std::atomic<int>>(2);
  auto one_done = [self, left, done = std::move(done)] {
    if (left->fetch_sub(1) != 1) {
      return;
    }
    // Both listeners are drained: nothing uses Redis any more.
    asio::post(self->backend, [self, done] {
      self->events.close();
      self->redis.close();
      if (done) {
        done();
      }
    });
  };
  if (!self->server || !self->admin) {
    asio::post(self->backend, [self] {
      self->events.close();
      self->redis.close();
    });
    return;
  }
  self->server->stop(drain, one_done);
  self->admin->stop(drain, one_done);
}

void proxy::run() {
  impl_->server->run();
}

std::string proxy::metrics_text() const {
  return impl_->metrics_text();
}

}  // namespace dp::proxy
