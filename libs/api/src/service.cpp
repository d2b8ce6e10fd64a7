// The api-server's service: its routes, and what every route passes first (bearer/local-mode
// auth, the browser checks, metrics); the health, metrics, dashboard and OpenAPI handlers.
#include "dp/api/api.hpp"

#include <boost/json/value_from.hpp>

#include <chrono>

#include "assets.hpp"
#include "dp/api/auth.hpp"
#include "dp/api/browser.hpp"
#include "dp/core/log.hpp"
#include "dp/proto/json.hpp"
#include "service_impl.hpp"

namespace dp::api {

// ---- helpers ----

json::value service::impl::deployment_json(const proto::deployment& d) const {
  auto v = json::value_from(d);
  auto& o = v.as_object();
  o["url"] = d.alias ? json::value(site_url(opts_.site, *d.alias)) : json::value(nullptr);
  o["alias_url"] = site_url(opts_.site, d.project);
  // The branch and pull-request sites go-live points at it (while no newer build took them).
  json::array previews;
  for (const auto& label : state::preview_aliases(d)) {
    previews.push_back(json::value(site_url(opts_.site, label)));
  }
  o["preview_urls"] = std::move(previews);
  return v;
}

std::optional<response> service::impl::authorize(const http::request& req, access a,
                                                 bool query_token) const {
  if (a == access::open || a == access::secret) {
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

std::optional<response> service::impl::refuse_from_browser(const http::request& req,
                                                           bool takes_archive) const {
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

std::optional<response> service::impl::refuse(const http::request& req, access a, bool query_token,
                                              bool takes_archive) const {
  if (auto denied = authorize(req, a, query_token)) {
    return denied;
  }
  return refuse_from_browser(req, takes_archive);
}

template <class F>
void service::impl::add(http::router& r, http::method m, std::string pattern, access a, F f,
                        http::route_options ro) {
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

// ---- operations ----

asio::awaitable<response> service::impl::healthz(http::request&) {
  co_return response(200, "application/json", "{\"status\":\"ok\"}");
}

asio::awaitable<response> service::impl::readyz(http::request&) {
  std::vector<std::string> ping{"PING"};
  auto r = co_await redis_.exec(std::move(ping), std::chrono::milliseconds(1000));
  if (!r) {
    co_return error(dp::errc::unavailable, "redis: " + r.error().message);
  }
  co_return response(200, "application/json", "{\"status\":\"ready\"}");
}

asio::awaitable<response> service::impl::metrics_text(http::request&) {
  auto depth = co_await records_.queue_length();
  auto counts = co_await records_.deployments_by_status();
  std::optional<std::map<std::string, int64_t>> by_status;
  if (counts) {
    by_status = std::move(*counts);
  }
  co_return response(
      200, "text/plain; version=0.0.4; charset=utf-8",
      metrics_.render(depth ? std::optional<int64_t>(*depth) : std::nullopt, by_status));
}

namespace {

// The dashboard runs only its own files: no inline script or style, nothing from elsewhere, and
// no page may frame it.
constexpr std::string_view dashboard_csp =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

// A file of the dashboard, revalidated on each use (its ETag is a hash of its content, so an
// unchanged file is a 304 and a new build's file is never stale).
response dashboard_response(const assets::file& f, const http::request& req) {
  response res(200, std::string(f.content_type), std::string(f.body));
  if (req.header("if-none-match") == f.etag) {
    res = response(304);
  }
  res.set("etag", f.etag);
  res.set("cache-control", "no-cache");
  res.set("content-security-policy", dashboard_csp);
  res.set("x-content-type-options", "nosniff");
  res.set("referrer-policy", "no-referrer");
  return res;
}

}  // namespace

asio::awaitable<response> service::impl::dashboard(http::request& req) {
  co_return dashboard_response(*assets::find("index.html"), req);
}

asio::awaitable<response> service::impl::dashboard_file(http::request& req) {
  const auto* f = assets::find(req.param("file"));
  if (!f) {
    co_return error(dp::errc::not_found,
                    fmt::format("the dashboard has no file '{}'", req.param("file")));
  }
  co_return dashboard_response(*f, req);
}

asio::awaitable<response> service::impl::openapi(http::request&) {
  co_return response(200, "application/json", std::string(assets::openapi_json));
}

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
  s.add(r, m::get, "/ui/{file}", access::open, &i::dashboard_file);
  s.add(r, m::get, "/healthz", access::open, &i::healthz);
  s.add(r, m::get, "/readyz", access::open, &i::readyz);
  s.add(r, m::get, "/v1/openapi.json", access::open, &i::openapi);
  s.add(r, m::get, "/metrics", access::token, &i::metrics_text);
  s.add(r, m::post, "/v1/projects", access::token, &i::create_project);
  s.add(r, m::get, "/v1/projects", access::token, &i::list_projects);
  s.add(r, m::get, "/v1/projects/{name}", access::token, &i::get_project);
  s.add(r, m::patch, "/v1/projects/{name}", access::token, &i::patch_project);
  s.add(r, m::delete_, "/v1/projects/{name}", access::token, &i::delete_project);
  s.add(r, m::delete_, "/v1/projects/{name}/cache", access::token, &i::delete_cache);
  s.add(r, m::get, "/v1/projects/{name}/deployments", access::token, &i::list_deployments);
  s.add(r, m::post, "/v1/projects/{name}/deployments", access::token,
        &i::create_project_deployment);
  s.add(r, m::post, "/v1/projects/{name}/domains", access::token, &i::add_domain);
  s.add(r, m::get, "/v1/projects/{name}/domains", access::token, &i::list_domains);
  s.add(r, m::get, "/v1/projects/{name}/domains/{domain}", access::token, &i::get_domain);
  s.add(r, m::patch, "/v1/projects/{name}/domains/{domain}", access::token, &i::patch_domain);
  s.add(r, m::delete_, "/v1/projects/{name}/domains/{domain}", access::token, &i::delete_domain);
  s.add(r, m::post, "/v1/projects/{name}/domains/{domain}/verify", access::token,
        &i::verify_domain);
  s.add(r, m::post, "/v1/projects/{name}/promote", access::token, &i::promote);
  s.add(r, m::post, "/v1/deployments", access::token, &i::create_deployment,
        {.body_limit = s.opts_.source_max_bytes});
  s.add(r, m::get, "/v1/deployments/{id}", access::token, &i::get_deployment);
  s.add(r, m::delete_, "/v1/deployments/{id}", access::token, &i::delete_deployment);
  s.add(r, m::post, "/v1/deployments/{id}/cancel", access::token, &i::cancel_deployment);
  s.add(r, m::get, "/v1/deployments/{id}/logs", access::token, &i::get_logs);
  s.add(r, m::get, "/v1/deployments/{id}/logs/stream", access::token, &i::stream_logs);
  s.add(r, m::post, "/project", access::token, &i::legacy_project);
  s.add(r, m::post, "/v1/projects/{name}/webhook-secret", access::token, &i::rotate_webhook_secret);
  s.add(r, m::put, "/v1/projects/{name}/forge", access::token, &i::put_forge);
  s.add(r, m::get, "/v1/projects/{name}/hooks", access::token, &i::list_hooks);
  s.add(r, m::post, "/v1/projects/{name}/hooks", access::token, &i::create_hook);
  s.add(r, m::delete_, "/v1/projects/{name}/hooks/{id}", access::token, &i::delete_hook);
  s.add(r, m::post, "/v1/webhooks/{provider}/{project}", access::secret, &i::receive_webhook,
        {.body_limit = s.opts_.webhook_max_bytes});
  s.add(r, m::post, "/v1/hooks/{secret}", access::secret, &i::trigger_hook);
  return r;
}

}  // namespace dp::api
