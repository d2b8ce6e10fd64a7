#pragma once
// Private to libs/api: the service's state and handlers. The routes and the checks every handler
// passes (auth, browser checks, metrics) are in service.cpp; projects.cpp, deployments.cpp and
// log_stream.cpp hold the handlers of their resources.

#include <boost/json/value.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "dp/api/api.hpp"
#include "dp/api/input.hpp"
#include "dp/api/metrics.hpp"
#include "dp/forge/signature.hpp"
#include "dp/http/json.hpp"
#include "dp/http_client/client.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/domains.hpp"
#include "dp/state/hooks.hpp"
#include "dp/state/records.hpp"
#include "dp/storage/object_store.hpp"
#include "log_hub.hpp"

namespace dp::api {

namespace asio = boost::asio;
namespace json = boost::json;
using http::response;

// Who may call a route. `secret`: whoever proves a secret in the request itself (a forge's
// webhook signature, a deploy hook's URL) instead of the API token; the browser checks still apply.
enum class access { open, token, secret };

inline response error(const dp::error& e) {
  return http::error_response(e);
}
inline response error(dp::errc code, std::string message) {
  return http::error_response(dp::make_error(code, std::move(message)));
}

// Where a log stream sends its messages (log_stream.cpp).
class sink;

struct service::impl {
  impl(asio::any_io_executor ex, redis::client& r, redis::options pubsub,
       std::shared_ptr<storage::object_store> s, options o)
      : ex_(ex),
        redis_(r),
        records_(r, o.keys),
        hooks_(r, o.keys),
        domains_(r, o.keys),
        outbound_(ex),
        txt_resolver_({.server = o.dns_resolver}),
        storage_(std::move(s)),
        opts_(std::move(o)),
        hub_(ex, std::move(pubsub), opts_.keys, opts_.follower_queue_limit, metrics_) {}

  asio::any_io_executor ex_;
  redis::client& redis_;
  state::records records_;
  state::hooks hooks_;
  state::domains domains_;
  http_client::client outbound_;    // the domain ownership check over HTTP
  dns::txt_resolver txt_resolver_;  // and by a TXT record
  std::shared_ptr<storage::object_store> storage_;
  options opts_;
  metrics metrics_;
  log_hub hub_;

  // ---- helpers (service.cpp) ----

  json::value deployment_json(const proto::deployment& d) const;

  std::optional<response> authorize(const http::request& req, access a,
                                    bool query_token = false) const;

  // What a web page must not make the API do (browser.hpp): a non-JSON body, a foreign Origin
  // (cross-site requests and WebSocket handshakes), in local mode a foreign Host (DNS rebinding).
  // Only the head is read, so it runs before the body too.
  std::optional<response> refuse_from_browser(const http::request& req, bool takes_archive) const;

  std::optional<response> refuse(const http::request& req, access a, bool query_token,
                                 bool takes_archive) const;

  // Wraps a handler with auth, the browser checks and metrics; `pattern` labels its metrics. A
  // request with a body is refused on its head already, before the body (up to SOURCE_MAX_MB)
  // is read.
  template <class F>
  void add(http::router& r, http::method m, std::string pattern, access a, F f,
           http::route_options ro = {});

  // ---- projects (projects.cpp) ----

  asio::awaitable<response> create_project(http::request& req);

  asio::awaitable<response> list_projects(http::request&);

  asio::awaitable<dp::result<proto::project>> find_project(std::string_view name);
  // Publishes a route event after the change it names; a failure is logged, not answered: the
  // proxies' lookup TTL still brings the change.
  asio::awaitable<void> announce_routes(proto::route_event e);

  asio::awaitable<response> get_project(http::request& req);
  asio::awaitable<dp::result<json::value>> effective_settings(const std::string& project);

  asio::awaitable<response> patch_project(http::request& req);

  asio::awaitable<response> delete_project(http::request& req);

  // DELETE /v1/projects/{name}/cache: every archive and the index of the project's build cache.
  asio::awaitable<response> delete_cache(http::request& req);

  // ---- custom domains (domains.cpp) ----

  // The domain named by {name} and {domain}; not_found when it is not that project's.
  asio::awaitable<dp::result<state::domain>> find_domain(http::request& req);
  asio::awaitable<response> domain_response(unsigned status, const std::string& fqdn,
                                            const std::string& project);
  asio::awaitable<response> add_domain(http::request& req);
  asio::awaitable<response> list_domains(http::request& req);
  asio::awaitable<response> get_domain(http::request& req);
  asio::awaitable<response> patch_domain(http::request& req);
  asio::awaitable<response> delete_domain(http::request& req);
  // Fetches http://<fqdn>/.well-known/dp-verify/<token>; the right answer makes it routed.
  asio::awaitable<response> verify_domain(http::request& req);
  // Why the domain's proof failed, or "" when it passed.
  asio::awaitable<std::string> txt_proof_failure(const state::domain& d);
  asio::awaitable<std::string> http_proof_failure(const state::domain& d);

  // ---- deployments (deployments.cpp) ----

  // Removes a deployment's files, then its keys (files first: keys without files are harmless,
  // files without keys would be unreachable garbage).
  asio::awaitable<dp::result<void>> remove_deployment(const proto::deployment& d);

  // Creates a production deployment of an uploaded tar.gz and its job; the archive is stored
  // first (a worker may take the job at once); a taken immutable alias means a new id.
  // `no_cache`: the build does not restore the project's build cache.
  asio::awaitable<dp::result<proto::deployment>> deploy_archive(const proto::project& p,
                                                                const std::string& archive,
                                                                bool no_cache,
                                                                proto::deployment_trigger trigger);

  // A git deployment of `p` as the request describes it (start_deployment.hpp): 202 with it.
  asio::awaitable<response> deploy_git(proto::project p, deploy_request in);

  // The project a deploy request names, created on a first deploy from a git URL.
  asio::awaitable<dp::result<proto::project>> project_for(const deploy_request& req);

  asio::awaitable<response> create_deployment(http::request& req);

  // POST /v1/projects/{name}/deployments: {branch?, commit?, no_cache?, trigger?}.
  asio::awaitable<response> create_project_deployment(http::request& req);

  // POST /v1/deployments?project=NAME with a tar.gz of the source (deployctl deploy <directory>).
  asio::awaitable<response> create_from_archive(http::request& req);

  // The original design's endpoint, kept for its clients.
  asio::awaitable<response> legacy_project(http::request& req);

  asio::awaitable<dp::result<proto::deployment>> find_deployment(std::string_view id);

  asio::awaitable<response> get_deployment(http::request& req);

  asio::awaitable<response> list_deployments(http::request& req);

  asio::awaitable<response> cancel_deployment(http::request& req);

  asio::awaitable<response> promote(http::request& req);

  asio::awaitable<response> delete_deployment(http::request& req);

  // ---- webhooks and deploy hooks (webhooks.cpp) ----

  // POST /v1/webhooks/{provider}/{project}: a forge's event, verified on the raw body first.
  asio::awaitable<response> receive_webhook(http::request& req);
  // What a verified, first-seen event does: deploy, remove a preview alias, or nothing.
  asio::awaitable<response> act_on_webhook(const proto::project& p, forge::provider forge,
                                           std::string_view event_name, std::string_view body);

  // With a forge configured (PUT .../forge), what the worker needs to report `d`'s commit status.
  asio::awaitable<dp::result<void>> note_commit_status(const proto::deployment& d);

  // POST /v1/projects/{name}/webhook-secret: a new secret, shown once (the old one stops).
  asio::awaitable<response> rotate_webhook_secret(http::request& req);

  // PUT /v1/projects/{name}/forge: where commit statuses go; the token is never returned.
  asio::awaitable<response> put_forge(http::request& req);

  // GET/POST /v1/projects/{name}/hooks, DELETE /v1/projects/{name}/hooks/{id}.
  asio::awaitable<response> list_hooks(http::request& req);
  asio::awaitable<response> create_hook(http::request& req);
  asio::awaitable<response> delete_hook(http::request& req);

  // POST /v1/hooks/{secret}: deploys the hook's branch.
  asio::awaitable<response> trigger_hook(http::request& req);

  // ---- log streaming (log_stream.cpp) ----

  asio::awaitable<response> get_logs(http::request& req);

  asio::awaitable<response> stream_logs(http::request& req);

  // Replays the logbook after `last`, advancing it.
  asio::awaitable<dp::result<void>> replay(const std::string& id, int64_t& last, sink& out);

  // Catches up the logbook once more, then sends the final record.
  asio::awaitable<dp::result<void>> finish(const std::string& id, int64_t& last, sink& out);

  // One client: subscribe, replay, follow; every log line exactly once, in seq order.
  template <class Stream>
  asio::awaitable<void> run_stream(std::string id, int64_t last, std::unique_ptr<sink> out,
                                   Stream stream);

  asio::awaitable<void> follow(const std::string& id, int64_t last, sink& out, follower& f);

  // ---- operations (service.cpp) ----

  asio::awaitable<response> healthz(http::request&);

  asio::awaitable<response> readyz(http::request&);

  asio::awaitable<response> metrics_text(http::request&);

  asio::awaitable<response> dashboard(http::request&);
  asio::awaitable<response> dashboard_file(http::request&);

  asio::awaitable<response> openapi(http::request&);
};

}  // namespace dp::api
