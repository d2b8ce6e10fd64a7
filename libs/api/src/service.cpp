#include "dp/api/api.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>

#include <chrono>

#include "assets.hpp"
#include "dp/api/auth.hpp"
#include "dp/api/browser.hpp"
#include "dp/api/input.hpp"
#include "dp/api/metrics.hpp"
#include "dp/core/id.hpp"
#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"
#include "dp/http/json.hpp"
#include "dp/http/stream.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/logbook.hpp"
#include "dp/state/store.hpp"
#include "dp/storage/object_store.hpp"
#include "log_hub.hpp"

namespace dp::api {

namespace asio = boost::asio;
namespace json = boost::json;
using http::response;
using proto::deployment_status;

namespace {

constexpr size_t replay_page = 1000;
constexpr int64_t max_log_page = 10'000;
constexpr int create_attempts = 5;
constexpr size_t json_body_limit = 1024 * 1024;

enum class access { open, token };

response error(const dp::error& e) {
  return http::error_response(e);
}
response error(dp::errc code, std::string message) {
  return http::error_response(dp::make_error(code, std::move(message)));
}

// Wakes a follower when its client goes away (the stream closes), so it stops waiting.
template <class Stream>
asio::awaitable<void> watch_close(std::shared_ptr<follower> f, Stream s) {
  co_await s.wait_closed();
  f->closed = true;
  f->wake();
}

// Where a log stream sends its messages: SSE events or WebSocket text frames.
class sink {
 public:
  virtual ~sink() = default;
  virtual asio::awaitable<dp::result<void>> log(int64_t seq, std::string_view json) = 0;
  virtual asio::awaitable<dp::result<void>> status(std::string_view json) = 0;
  // Called by the hub when the client is too slow; must not suspend. Every later log or status
  // then fails, so that no replay goes on feeding a dropped client.
  void drop(const std::string& reason) {
    dropped_ = true;
    on_drop(reason);
  }

 protected:
  virtual void on_drop(const std::string& reason) = 0;
  dp::result<void> check_dropped() const {
    if (dropped_) {
      return make_error(errc::canceled, "log stream client dropped");
    }
    return {};
  }

 private:
  bool dropped_ = false;
};

class sse_sink final : public sink {
 public:
  explicit sse_sink(http::sse_stream s) : s_(std::move(s)) {}
  asio::awaitable<dp::result<void>> log(int64_t seq, std::string_view json) override {
    auto id = std::to_string(seq);
    http::sse_event e{.data = json, .event = "log", .id = id};
    co_return co_await send(e);
  }
  asio::awaitable<dp::result<void>> status(std::string_view json) override {
    http::sse_event e{.data = json, .event = "status"};
    co_return co_await send(e);
  }
  void on_drop(const std::string& reason) override {
    // The error event goes out if there is room; otherwise the stream just ends.
    if (!s_.try_send({.data = reason, .event = "error"})) {
      s_.close(1008, reason);
    }
  }

 private:
  // Queue without waiting while there is room; wait only when the client lags (back-pressure).
  asio::awaitable<dp::result<void>> send(const http::sse_event& e) {
    if (auto d = check_dropped(); !d) {
      co_return d;
    }
    auto r = s_.try_send(e);
    if (r || !r.error().is(dp::errc::too_large)) {
      co_return r;
    }
    co_return co_await s_.send(e);
  }
  http::sse_stream s_;
};

class ws_sink final : public sink {
 public:
  explicit ws_sink(http::websocket ws) : ws_(std::move(ws)) {}
  asio::awaitable<dp::result<void>> log(int64_t, std::string_view json) override {
    // {"type":"log", + the event's own fields: one frame, no re-serialization.
    std::string frame;
    frame.reserve(json.size() + 14);
    frame.append("{\"type\":\"log\",").append(json.substr(1));
    return send(std::move(frame));
  }
  asio::awaitable<dp::result<void>> status(std::string_view json) override {
    return send(fmt::format("{{\"type\":\"status\",\"deployment\":{}}}", json));
  }
  void on_drop(const std::string& reason) override { ws_.close(1008, reason); }

 private:
  asio::awaitable<dp::result<void>> send(std::string frame) {
    if (auto d = check_dropped(); !d) {
      co_return d;
    }
    auto r = ws_.try_send_text(frame);
    if (r || !r.error().is(dp::errc::too_large)) {
      co_return r;
    }
    co_return co_await ws_.send_text(frame);
  }
  http::websocket ws_;
};

}  // namespace

struct service::impl {
  impl(asio::any_io_executor ex, redis::client& r, redis::options pubsub,
       std::shared_ptr<storage::object_store> s, options o)
      : ex_(ex),
        redis_(r),
        store_(r, o.keys),
        storage_(std::move(s)),
        opts_(std::move(o)),
        hub_(ex, std::move(pubsub), opts_.keys, opts_.follower_queue_limit, metrics_) {}

  asio::any_io_executor ex_;
  redis::client& redis_;
  state::store store_;
  std::shared_ptr<storage::object_store> storage_;
  options opts_;
  metrics metrics_;
  log_hub hub_;

  // ---- helpers ---------------------------------------------------------------------------

  json::value deployment_json(const proto::deployment& d) const {
    auto v = json::value_from(d);
    auto& o = v.as_object();
    o["url"] = d.alias ? json::value(site_url(opts_.site, *d.alias)) : json::value(nullptr);
    o["alias_url"] = site_url(opts_.site, d.project);
    return v;
  }

  std::optional<response> authorize(const http::request& req, access a,
                                    bool query_token = false) const {
    if (a == access::open) {
      return std::nullopt;
    }
    std::optional<std::string_view> token;
    if (auto h = req.header("authorization")) {
      token = bearer_token(*h);
    }
    // Browsers cannot set headers on EventSource or WebSocket: the stream takes ?access_token=.
    std::optional<std::string> from_query;
    if (!token && query_token && (from_query = req.query("access_token"))) {
      token = *from_query;
    }
    switch (dp::api::authorize(opts_.api_tokens, token, req.remote().host)) {
      case auth_result::ok:
        return std::nullopt;
      case auth_result::missing_token:
      case auth_result::wrong_token: {
        auto res = error(dp::errc::unauthorized,
                         token ? "the bearer token is not valid" : "a bearer token is required");
        res.set("www-authenticate", "Bearer realm=\"api\"");
        return res;
      }
      case auth_result::not_loopback:
        return error(dp::errc::forbidden,
                     "no API token is configured (local mode): only loopback clients are served");
    }
    return std::nullopt;
  }

  // What a web page must not make the API do (browser.hpp): a non-JSON body, a foreign Origin
  // (cross-site requests and WebSocket handshakes), in local mode a foreign Host (DNS rebinding).
  // Only the head is read, so it runs before the body too.
  std::optional<response> refuse_from_browser(const http::request& req, bool takes_archive) const {
    if (auto origin = req.header("origin");
        origin && !is_allowed_origin(*origin, req.host(), opts_.allowed_origins)) {
      return error(dp::errc::forbidden,
                   fmt::format("Origin '{}' may not call this API: only pages of its own origin "
                               "and of API_ALLOWED_ORIGINS may",
                               *origin));
    }
    if (auto host = req.host();
        opts_.api_tokens.empty() && host && !is_local_host(*host, opts_.api_hosts)) {
      return http::error_response(
          421, "misdirected_request",
          fmt::format("Host '{}' is not a name of this API: in local mode it answers to "
                      "localhost, IP addresses and API_HOSTS (a DNS-rebinding page is refused)",
                      *host));
    }
    auto m = req.method();
    bool changes = m == http::method::post || m == http::method::put || m == http::method::patch ||
                   m == http::method::delete_;
    auto length = req.header("content-length");
    bool has_body = req.header("transfer-encoding") || (length && *length != "0");
    if (changes && has_body) {
      auto type = req.header("content-type").value_or("");
      if (!is_json_type(type) && !(takes_archive && is_archive_type(type))) {
        return http::error_response(
            415, "unsupported_media_type",
            fmt::format("the body must be sent as Content-Type: application/json{} (got '{}')",
                        takes_archive ? " (or application/gzip: a tar.gz)" : "", type));
      }
    }
    return std::nullopt;
  }

  std::optional<response> refuse(const http::request& req, access a, bool query_token,
                                 bool takes_archive) const {
    if (auto denied = authorize(req, a, query_token)) {
      return denied;
    }
    return refuse_from_browser(req, takes_archive);
  }

  // Wraps a handler with auth, the browser checks and metrics; `pattern` labels its metrics. A
  // request with a body is refused on its head already, before the body (up to SOURCE_MAX_MB)
  // is read.
  template <class F>
  void add(http::router& r, http::method m, std::string pattern, access a, F f,
           http::route_options ro = {}) {
    bool query_token = pattern.ends_with("/logs/stream");
    // The upload (deployctl deploy <directory>) posts a tar.gz.
    bool takes_archive = m == http::method::post && pattern == "/v1/deployments";
    if (a != access::open) {
      ro.admit = [this, pattern, a, query_token, takes_archive](const http::request& req) {
        auto denied = refuse(req, a, query_token, takes_archive);
        if (denied) {
          metrics_.observe(pattern, req.method_name(), denied->status,
                           std::chrono::nanoseconds::zero());
        }
        return denied;
      };
    }
    r.add(
        m, pattern,
        [this, pattern, a, f, query_token,
         takes_archive](http::request& req) -> asio::awaitable<response> {
          auto start = std::chrono::steady_clock::now();
          response res;
          std::optional<response> denied;
          if (a != access::open) {
            denied = refuse(req, a, query_token, takes_archive);
          }
          if (denied) {
            res = std::move(*denied);
          } else {
            res = co_await (this->*f)(req);
          }
          metrics_.observe(pattern, req.method_name(), res.status,
                           std::chrono::steady_clock::now() - start);
          co_return res;
        },
        ro);
  }

  // ---- projects ----------------------------------------------------------------------------

  asio::awaitable<response> create_project(http::request& req) {
    auto p = parse_new_project(req.body(), opts_.allowed_git_protocols);
    if (!p) {
      co_return error(p.error());
    }
    p->created_at = state::now_ms();
    if (auto r = co_await store_.create_project(*p); !r) {
      co_return error(r.error());
    }
    co_return http::json_response(201, json::value_from(*p));
  }

  asio::awaitable<response> list_projects(http::request&) {
    auto names = co_await store_.project_names();
    if (!names) {
      co_return error(names.error());
    }
    std::sort(names->begin(), names->end());
    json::array out;
    for (const auto& name : *names) {
      auto p = co_await store_.get_project(name);
      if (p) {
        out.push_back(json::value_from(*p));
      } else if (!p.error().is(dp::errc::not_found)) {
        co_return error(p.error());
      }
    }
    co_return http::json_response(200, json::object{{"projects", std::move(out)}});
  }

  asio::awaitable<dp::result<proto::project>> find_project(std::string_view name) {
    if (auto r = check_project_name("project name", name); !r) {
      co_return r.error();
    }
    co_return co_await store_.get_project(name);
  }

  asio::awaitable<response> get_project(http::request& req) {
    auto p = co_await find_project(req.param("name"));
    if (!p) {
      co_return error(p.error());
    }
    auto v = json::value_from(*p);
    v.as_object()["url"] = site_url(opts_.site, p->name);
    auto live = co_await store_.resolve_alias(p->name);
    if (!live) {
      co_return error(live.error());
    }
    v.as_object()["production_deployment_id"] = *live ? json::value(**live) : json::value(nullptr);
    co_return http::json_response(200, v);
  }

  asio::awaitable<response> patch_project(http::request& req) {
    auto p = co_await find_project(req.param("name"));
    if (!p) {
      co_return error(p.error());
    }
    if (auto r = apply_project_patch(*p, req.body(), opts_.allowed_git_protocols); !r) {
      co_return error(r.error());
    }
    if (auto r = co_await store_.save_project(*p); !r) {
      co_return error(r.error());
    }
    co_return http::json_response(200, json::value_from(*p));
  }

  // Removes a deployment's files, then its keys (files first: keys without files are harmless,
  // files without keys would be unreachable garbage).
  asio::awaitable<dp::result<void>> remove_deployment(const proto::deployment& d) {
    auto removed = co_await storage_->remove_prefix(proto::output_prefix(d.id));
    if (!removed) {
      co_return removed.error();
    }
    if (d.git_url.empty()) {
      if (auto r = co_await storage_->remove(proto::source_archive_key(d.id)); !r) {
        co_return r.error();
      }
    }
    co_return co_await store_.delete_deployment(d);
  }

  asio::awaitable<response> delete_project(http::request& req) {
    auto p = co_await find_project(req.param("name"));
    if (!p) {
      co_return error(p.error());
    }
    auto total = co_await store_.deployment_count(p->name);
    if (!total) {
      co_return error(total.error());
    }
    auto ids = co_await store_.deployment_ids(p->name, 0, *total);
    if (!ids) {
      co_return error(ids.error());
    }
    std::vector<proto::deployment> all;
    for (const auto& id : *ids) {
      auto d = co_await store_.get_deployment(id);
      if (!d) {
        if (d.error().is(dp::errc::not_found)) {
          continue;
        }
        co_return error(d.error());
      }
      // A running build would keep writing: the caller cancels it first.
      if (!proto::is_final(d->status)) {
        co_return error(dp::errc::conflict, fmt::format("deployment {} is {}: cancel it first",
                                                        d->id, proto::to_string(d->status)));
      }
      all.push_back(std::move(*d));
    }
    for (const auto& d : all) {
      if (auto r = co_await remove_deployment(d); !r) {
        co_return error(r.error());
      }
    }
    // Removes alias:<name> too; proxies see it within their alias TTL (alias events only ever
    // name a deployment to serve).
    if (auto r = co_await store_.delete_project(p->name); !r) {
      co_return error(r.error());
    }
    co_return response(204);
  }

  // ---- deployments -------------------------------------------------------------------------

  // Creates the deployment and its job; a taken immutable alias means a new id. With `archive`
  // (an uploaded tar.gz), the archive is stored first: a worker may take the job at once.
  asio::awaitable<dp::result<proto::deployment>> deploy(const proto::project& p,
                                                        std::optional<std::string> ref,
                                                        const std::string* archive = nullptr) {
    if (!ref) {
      ref = p.branch;
    }
    if (!archive && p.git_url.empty()) {
      co_return dp::make_error(dp::errc::conflict,
                               "project '{}' has no git URL (it was deployed from a directory): "
                               "upload a directory again or PATCH a git_url",
                               p.name);
    }
    for (int attempt = 1;; ++attempt) {
      proto::deployment d;
      d.id = dp::new_deployment_id();
      d.project = p.name;
      d.git_url = archive ? std::string() : p.git_url;
      d.ref = archive ? std::nullopt : ref;
      d.created_at = state::now_ms();
      proto::job j{.deployment_id = d.id,
                   .project = p.name,
                   .git_url = d.git_url,
                   .ref = d.ref,
                   .root_dir = p.root_dir,
                   .install_command = p.install_command,
                   .build_command = p.build_command,
                   .output_dir = p.output_dir,
                   .env = p.env,
                   .attempt = 1,
                   .timeout_s = opts_.build_timeout_s,
                   .enqueued_at = d.created_at,
                   .mode = p.mode};
      if (archive) {
        j.source_archive = proto::source_archive_key(d.id);
        storage::put_options po;
        po.content_type = "application/gzip";
        auto stored = co_await storage_->put_buffer(*j.source_archive, *archive, std::move(po));
        if (!stored) {
          co_return stored.error();
        }
      }
      auto r = co_await store_.create_deployment(d, j);
      if (r) {
        co_return d;
      }
      if (archive) {
        if (auto removed = co_await storage_->remove(*j.source_archive); !removed) {
          dp::log::warn("cannot remove the archive of a deployment not created",
                        {{"key", *j.source_archive}, {"error", removed.error()}});
        }
      }
      if (!r.error().is(dp::errc::conflict) || attempt == create_attempts) {
        co_return r.error();
      }
    }
  }

  // The project a deploy request names, created on a first deploy from a git URL.
  asio::awaitable<dp::result<proto::project>> project_for(const deploy_request& req) {
    std::string name;
    if (req.project) {
      name = *req.project;
    } else if (auto derived = project_name_from_git_url(*req.git_url)) {
      name = *derived;
    } else {
      co_return dp::make_error(dp::errc::invalid_argument,
                               "cannot derive a project name from the git URL: give 'project'");
    }
    auto p = co_await store_.get_project(name);
    if (p) {
      if (req.git_url && *req.git_url != p->git_url) {
        co_return dp::make_error(dp::errc::conflict,
                                 "project '{}' builds from another git URL; PATCH the project to "
                                 "change it",
                                 name);
      }
      co_return p;
    }
    if (!p.error().is(dp::errc::not_found) || !req.git_url) {
      co_return p.error();
    }
    if (auto r = check_new_project_name("project name", name); !r) {
      co_return r.error();
    }
    proto::project created;
    created.name = name;
    created.git_url = *req.git_url;
    created.created_at = state::now_ms();
    auto r = co_await store_.create_project(created);
    if (!r && r.error().is(dp::errc::conflict)) {
      // Created by a concurrent request: use theirs if it is the same repository. Not there:
      // the name is taken by an alias (the store's message says so).
      auto theirs = co_await store_.get_project(name);
      if (!theirs) {
        co_return theirs.error().is(dp::errc::not_found) ? r.error() : theirs.error();
      }
      if (*req.git_url != theirs->git_url) {
        co_return dp::make_error(dp::errc::conflict,
                                 "project '{}' builds from another git URL; PATCH the project to "
                                 "change it",
                                 name);
      }
      co_return theirs;
    }
    if (!r) {
      co_return r.error();
    }
    co_return created;
  }

  asio::awaitable<response> create_deployment(http::request& req) {
    if (is_archive_type(req.header("content-type").value_or(""))) {
      co_return co_await create_from_archive(req);
    }
    // The route's limit is the archive's; JSON keeps the server's 1 MiB.
    if (req.body().size() > json_body_limit) {
      co_return error(dp::errc::too_large, "the request body is over 1 MiB");
    }
    auto in = parse_deploy_request(req.body(), opts_.allowed_git_protocols);
    if (!in) {
      co_return error(in.error());
    }
    auto p = co_await project_for(*in);
    if (!p) {
      co_return error(p.error());
    }
    auto d = co_await deploy(*p, in->ref);
    if (!d) {
      co_return error(d.error());
    }
    auto res = http::json_response(202, deployment_json(*d));
    res.set("location", "/v1/deployments/" + d->id);
    co_return res;
  }

  // POST /v1/deployments?project=NAME with a tar.gz of the source (deployctl deploy <directory>).
  asio::awaitable<response> create_from_archive(http::request& req) {
    auto name = req.query("project");
    if (!name) {
      co_return error(dp::errc::invalid_argument,
                      "query parameter 'project' is required with an archive body");
    }
    if (auto r = check_project_name("query parameter 'project'", *name); !r) {
      co_return error(r.error());
    }
    const auto& body = req.body();
    // The gzip magic: a wrong upload is refused here rather than failing in the build.
    if (body.size() < 18 || static_cast<unsigned char>(body[0]) != 0x1f ||
        static_cast<unsigned char>(body[1]) != 0x8b) {
      co_return error(dp::errc::invalid_argument, "the body is not a gzip archive (tar.gz)");
    }
    auto p = co_await store_.get_project(*name);
    if (!p && p.error().is(dp::errc::not_found)) {
      if (auto r = check_new_project_name("query parameter 'project'", *name); !r) {
        co_return error(r.error());
      }
      proto::project created;
      created.name = *name;
      created.created_at = state::now_ms();
      // A concurrent first upload may have created it: read it back either way. Still not
      // there: the name is taken by an alias (the store's message says so).
      auto r = co_await store_.create_project(created);
      if (r || r.error().is(dp::errc::conflict)) {
        p = co_await store_.get_project(*name);
        if (!r && !p && p.error().is(dp::errc::not_found)) {
          p = r.error();
        }
      } else {
        p = r.error();
      }
    }
    if (!p) {
      co_return error(p.error());
    }
    auto d = co_await deploy(*p, std::nullopt, &body);
    if (!d) {
      co_return error(d.error());
    }
    auto res = http::json_response(202, deployment_json(*d));
    res.set("location", "/v1/deployments/" + d->id);
    co_return res;
  }

  // The original design's endpoint, kept for its clients.
  asio::awaitable<response> legacy_project(http::request& req) {
    auto in = parse_legacy_deploy_request(req.body(), opts_.allowed_git_protocols);
    if (!in) {
      co_return error(in.error());
    }
    auto p = co_await project_for(*in);
    if (!p) {
      co_return error(p.error());
    }
    auto d = co_await deploy(*p, std::nullopt);
    if (!d) {
      co_return error(d.error());
    }
    co_return http::json_response(200, json::object{{"status", "queued"},
                                                    {"data",
                                                     {{"projectSlug", p->name},
                                                      {"url", site_url(opts_.site, p->name)},
                                                      {"deployment_id", d->id}}}});
  }

  asio::awaitable<dp::result<proto::deployment>> find_deployment(std::string_view id) {
    if (!dp::is_deployment_id(id)) {
      co_return dp::make_error(dp::errc::not_found, "no deployment '{}'", id);
    }
    co_return co_await store_.get_deployment(id);
  }

  asio::awaitable<response> get_deployment(http::request& req) {
    auto d = co_await find_deployment(req.param("id"));
    if (!d) {
      co_return error(d.error());
    }
    co_return http::json_response(200, deployment_json(*d));
  }

  asio::awaitable<response> list_deployments(http::request& req) {
    auto p = co_await find_project(req.param("name"));
    if (!p) {
      co_return error(p.error());
    }
    auto limit = parse_count(req.query("limit"), "limit", 20, 100);
    auto cursor = req.query("cursor");
    auto offset = parse_count(cursor ? cursor : req.query("offset"), cursor ? "cursor" : "offset",
                              0, 1'000'000'000);
    if (!limit || !offset) {
      co_return error(!limit ? limit.error() : offset.error());
    }
    auto total = co_await store_.deployment_count(p->name);
    auto ids = co_await store_.deployment_ids(p->name, *offset, *limit);
    if (!total || !ids) {
      co_return error(!total ? total.error() : ids.error());
    }
    json::array out;
    for (const auto& id : *ids) {
      auto d = co_await store_.get_deployment(id);
      if (d) {
        out.push_back(deployment_json(*d));
      } else if (!d.error().is(dp::errc::not_found)) {
        co_return error(d.error());
      }
    }
    int64_t next = *offset + static_cast<int64_t>(ids->size());
    co_return http::json_response(
        200, json::object{
                 {"deployments", std::move(out)},
                 {"total", *total},
                 {"next_cursor", next < *total && !ids->empty() ? json::value(std::to_string(next))
                                                                : json::value(nullptr)}});
  }

  asio::awaitable<response> cancel_deployment(http::request& req) {
    auto d = co_await find_deployment(req.param("id"));
    if (!d) {
      co_return error(d.error());
    }
    if (proto::is_final(d->status)) {
      co_return error(dp::errc::conflict, fmt::format("deployment {} is already {}", d->id,
                                                      proto::to_string(d->status)));
    }
    proto::cancel_request cancel{
        .deployment_id = d->id, .requested_at = state::now_ms(), .reason = "canceled by request"};
    auto outcome = co_await store_.request_cancel(cancel);
    if (!outcome) {
      co_return error(outcome.error());
    }
    if (!outcome->applied && proto::is_final(outcome->previous)) {
      co_return error(dp::errc::conflict, fmt::format("deployment {} is already {}", d->id,
                                                      proto::to_string(outcome->previous)));
    }
    auto now = co_await store_.get_deployment(d->id);
    if (!now) {
      co_return error(now.error());
    }
    co_return http::json_response(202, deployment_json(*now));
  }

  asio::awaitable<response> promote(http::request& req) {
    auto p = co_await find_project(req.param("name"));
    if (!p) {
      co_return error(p.error());
    }
    auto id = parse_promote_request(req.body());
    if (!id) {
      co_return error(id.error());
    }
    auto d = co_await store_.get_deployment(*id);
    if (!d) {
      co_return error(d.error());
    }
    if (d->project != p->name) {
      co_return error(dp::errc::conflict,
                      fmt::format("deployment {} belongs to project '{}'", d->id, d->project));
    }
    if (d->status != deployment_status::ready) {
      co_return error(dp::errc::conflict,
                      fmt::format("deployment {} is {}: only a ready deployment can be promoted",
                                  d->id, proto::to_string(d->status)));
    }
    if (auto r = co_await store_.set_alias(p->name, p->name, d->id); !r) {
      co_return error(r.error());
    }
    co_return http::json_response(200, json::object{{"project", p->name},
                                                    {"deployment_id", d->id},
                                                    {"alias_url", site_url(opts_.site, p->name)}});
  }

  asio::awaitable<response> delete_deployment(http::request& req) {
    auto d = co_await find_deployment(req.param("id"));
    if (!d) {
      co_return error(d.error());
    }
    auto live = co_await store_.resolve_alias(d->project);
    if (!live) {
      co_return error(live.error());
    }
    if (*live == d->id) {
      co_return error(dp::errc::conflict,
                      fmt::format("deployment {} is in production for '{}': promote another first",
                                  d->id, d->project));
    }
    if (!proto::is_final(d->status)) {
      co_return error(dp::errc::conflict, fmt::format("deployment {} is {}: cancel it first", d->id,
                                                      proto::to_string(d->status)));
    }
    if (auto r = co_await remove_deployment(*d); !r) {
      co_return error(r.error());
    }
    co_return response(204);
  }

  // ---- logs --------------------------------------------------------------------------------

  asio::awaitable<response> get_logs(http::request& req) {
    auto d = co_await find_deployment(req.param("id"));
    if (!d) {
      co_return error(d.error());
    }
    auto since = parse_count(req.query("since"), "since", 0, INT64_MAX - 1);
    auto limit = parse_count(req.query("limit"), "limit", 1000, max_log_page);
    if (!since || !limit) {
      co_return error(!since ? since.error() : limit.error());
    }
    auto events = co_await state::read_logbook(redis_, opts_.keys, d->id, *since,
                                               static_cast<size_t>(*limit));
    if (!events) {
      co_return error(events.error());
    }
    std::string body = "{\"deployment_id\":\"" + d->id + "\",\"status\":\"";
    body.append(proto::to_string(d->status)).append("\",\"events\":[");
    for (size_t i = 0; i < events->size(); ++i) {
      if (i > 0) {
        body.push_back(',');
      }
      proto::append_json(body, (*events)[i]);
    }
    int64_t last = events->empty() ? *since : events->back().seq;
    body.append("],\"next_since\":").append(std::to_string(last)).append("}");
    co_return response(200, "application/json", std::move(body));
  }

  asio::awaitable<response> stream_logs(http::request& req) {
    auto d = co_await find_deployment(req.param("id"));
    if (!d) {
      co_return error(d.error());
    }
    // Resume point: Last-Event-ID (sent by EventSource on reconnect) wins over ?since=.
    std::optional<std::string> since_text = req.query("since");
    if (auto h = req.header("last-event-id")) {
      since_text = std::string(*h);
    }
    auto since = parse_count(since_text, "since", 0, INT64_MAX - 1);
    if (!since) {
      co_return error(since.error());
    }
    response res;
    std::string id = d->id;
    int64_t from = *since;
    if (req.wants_websocket()) {
      res.body = http::websocket_body{[this, id, from](http::websocket ws) {
        return run_stream(id, from, std::make_unique<ws_sink>(ws), ws);
      }};
    } else {
      res.set("cache-control", "no-cache");
      res.body = http::sse_body{[this, id, from](http::sse_stream s) {
        return run_stream(id, from, std::make_unique<sse_sink>(s), s);
      }};
    }
    co_return res;
  }

  // Replays the logbook after `last`, advancing it.
  asio::awaitable<dp::result<void>> replay(const std::string& id, int64_t& last, sink& out) {
    for (;;) {
      auto events = co_await state::read_logbook(redis_, opts_.keys, id, last, replay_page);
      if (!events) {
        co_return events.error();
      }
      std::string text;
      for (const auto& e : *events) {
        text.clear();
        proto::append_json(text, e);
        if (auto r = co_await out.log(e.seq, text); !r) {
          co_return r;
        }
        last = e.seq;
      }
      if (events->size() < replay_page) {
        co_return dp::result<void>{};
      }
    }
  }

  // Catches up the logbook once more, then sends the final record.
  asio::awaitable<dp::result<void>> finish(const std::string& id, int64_t& last, sink& out) {
    if (auto r = co_await replay(id, last, out); !r) {
      co_return r;
    }
    auto d = co_await store_.get_deployment(id);
    if (!d) {
      co_return d.error();
    }
    co_return co_await out.status(json::serialize(deployment_json(*d)));
  }

  // One client: subscribe, replay, follow; every log line exactly once, in seq order.
  template <class Stream>
  asio::awaitable<void> run_stream(std::string id, int64_t last, std::unique_ptr<sink> out,
                                   Stream stream) {
    auto ex = co_await asio::this_coro::executor;
    auto f = hub_.follow(ex, id);
    f->on_drop = [target = out.get(), id](const std::string& reason) {
      dp::log::warn("log stream client dropped", {{"deployment", id}, {"reason", reason}});
      target->drop(reason);
    };
    dp::spawn(ex, watch_close(f, stream), "log stream close watch");
    co_await follow(id, last, *out, *f);
    f->on_drop = nullptr;
    hub_.unfollow(f);
  }

  asio::awaitable<void> follow(const std::string& id, int64_t last, sink& out, follower& f) {
    if (auto r = co_await replay(id, last, out); !r) {
      co_return;
    }
    // A final status published before we subscribed was missed: read the record.
    auto d = co_await store_.get_deployment(id);
    if (!d) {
      co_return;
    }
    if (proto::is_final(d->status)) {
      f.final = true;
    }
    for (;;) {
      if (f.closed || f.dropped) {
        co_return;
      }
      if (f.queue.empty() && !f.gap && !f.final) {
        f.signal.expires_at(asio::steady_timer::time_point::max());
        co_await f.signal.async_wait(asio::as_tuple(asio::use_awaitable));
        continue;
      }
      auto items = std::exchange(f.queue, {});
      bool need_replay = std::exchange(f.gap, false);
      for (const auto& e : items) {
        if (need_replay || e->seq <= last) {
          continue;  // already sent (the replay overlapped the live feed)
        }
        if (e->seq != last + 1) {
          need_replay = true;  // a hole: the logbook has the missing lines
          continue;
        }
        if (auto r = co_await out.log(e->seq, e->text); !r) {
          co_return;
        }
        last = e->seq;
      }
      if (f.dropped || f.closed) {
        co_return;
      }
      if (need_replay) {
        if (auto r = co_await replay(id, last, out); !r) {
          co_return;
        }
      }
      if (f.final) {
        co_await finish(id, last, out);
        co_return;
      }
    }
  }

  // ---- operations --------------------------------------------------------------------------

  asio::awaitable<response> healthz(http::request&) {
    co_return response(200, "application/json", "{\"status\":\"ok\"}");
  }

  asio::awaitable<response> readyz(http::request&) {
    std::vector<std::string> ping{"PING"};
    auto r = co_await redis_.exec(std::move(ping), std::chrono::milliseconds(1000));
    if (!r) {
      co_return error(dp::errc::unavailable, "redis: " + r.error().message);
    }
    co_return response(200, "application/json", "{\"status\":\"ready\"}");
  }

  asio::awaitable<response> metrics_text(http::request&) {
    auto depth = co_await store_.queue_length();
    auto counts = co_await store_.deployments_by_status();
    std::optional<std::map<std::string, int64_t>> by_status;
    if (counts) {
      by_status = std::move(*counts);
    }
    co_return response(
        200, "text/plain; version=0.0.4; charset=utf-8",
        metrics_.render(depth ? std::optional<int64_t>(*depth) : std::nullopt, by_status));
  }

  asio::awaitable<response> dashboard(http::request&) {
    response res(200, "text/html; charset=utf-8", std::string(assets::dashboard_html));
    res.set("cache-control", "no-cache");
    res.set("content-security-policy",
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "connect-src 'self'");
    co_return res;
  }

  asio::awaitable<response> openapi(http::request&) {
    co_return response(200, "application/json", std::string(assets::openapi_json));
  }
};

service::service(asio::any_io_executor ex, redis::client& redis, redis::options pubsub,
                 std::shared_ptr<storage::object_store> storage, options opts)
    : impl_(std::make_unique<impl>(ex, redis, std::move(pubsub), std::move(storage),
                                   std::move(opts))) {
  if (impl_->opts_.api_tokens.empty()) {
    dp::log::warn(
        "no API_TOKENS configured: local mode, only loopback clients are served (set API_TOKENS "
        "to serve other hosts)");
  }
}

service::~service() = default;

asio::awaitable<dp::result<void>> service::start() {
  return impl_->hub_.start();
}

void service::stop() {
  impl_->hub_.stop();
}

http::router service::routes() {
  using m = http::method;
  using i = impl;
  http::router r;
  auto& s = *impl_;
  s.add(r, m::get, "/", access::open, &i::dashboard);
  s.add(r, m::get, "/healthz", access::open, &i::healthz);
  s.add(r, m::get, "/readyz", access::open, &i::readyz);
  s.add(r, m::get, "/v1/openapi.json", access::open, &i::openapi);
  s.add(r, m::get, "/metrics", access::token, &i::metrics_text);
  s.add(r, m::post, "/v1/projects", access::token, &i::create_project);
  s.add(r, m::get, "/v1/projects", access::token, &i::list_projects);
  s.add(r, m::get, "/v1/projects/{name}", access::token, &i::get_project);
  s.add(r, m::patch, "/v1/projects/{name}", access::token, &i::patch_project);
  s.add(r, m::delete_, "/v1/projects/{name}", access::token, &i::delete_project);
  s.add(r, m::get, "/v1/projects/{name}/deployments", access::token, &i::list_deployments);
  s.add(r, m::post, "/v1/projects/{name}/promote", access::token, &i::promote);
  s.add(r, m::post, "/v1/deployments", access::token, &i::create_deployment,
        {.body_limit = s.opts_.source_max_bytes});
  s.add(r, m::get, "/v1/deployments/{id}", access::token, &i::get_deployment);
  s.add(r, m::delete_, "/v1/deployments/{id}", access::token, &i::delete_deployment);
  s.add(r, m::post, "/v1/deployments/{id}/cancel", access::token, &i::cancel_deployment);
  s.add(r, m::get, "/v1/deployments/{id}/logs", access::token, &i::get_logs);
  s.add(r, m::get, "/v1/deployments/{id}/logs/stream", access::token, &i::stream_logs);
  s.add(r, m::post, "/project", access::token, &i::legacy_project);
  return r;
}

}  // namespace dp::api
