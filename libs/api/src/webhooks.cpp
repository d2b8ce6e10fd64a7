// What starts a deployment from outside with a secret instead of the API token: forge webhooks
// (signed; verified on the raw body before it is parsed) and deploy hooks (a secret URL); the
// project's webhook secret, forge settings and hooks.
#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/core/log.hpp"
#include "dp/forge/event.hpp"
#include "dp/forge/signature.hpp"
#include "service_impl.hpp"
#include "start_deployment.hpp"

namespace dp::api {
namespace {

// A delivery id is remembered this long: a replay within it is ignored. GitHub redelivers a
// failed delivery on request for up to 3 days.
constexpr std::chrono::seconds delivery_ttl = std::chrono::hours(24 * 7);
constexpr size_t delivery_id_max = 128;
// How long a deployment may wait and build and still report its commit status.
constexpr std::chrono::seconds commit_status_ttl = std::chrono::hours(24);
// 256 random bits, hex: webhook secrets and deploy hook URLs.
constexpr size_t secret_bytes = 32;

json::object webhook_paths(std::string_view project) {
  json::object paths;
  for (auto forge : {"github", "gitlab", "gitea"}) {
    paths[forge] = fmt::format("/v1/webhooks/{}/{}", forge, project);
  }
  return paths;
}

json::object hook_json(const state::deploy_hook& h) {
  return json::object{{"id", h.id}, {"branch", h.branch}, {"created_at", h.created_at}};
}

std::optional<std::string> non_empty(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

}  // namespace

asio::awaitable<response> service::impl::receive_webhook(http::request& req) {
  auto forge = forge::parse_provider(req.param("provider"));
  if (!forge) {
    co_return error(dp::errc::not_found,
                    fmt::format("unknown forge '{}': github, gitlab or gitea (Forgejo: gitea)",
                                req.param("provider")));
  }
  auto p = co_await find_project(req.param("project"));
  if (!p) {
    co_return error(p.error());
  }
  auto secret = co_await hooks_.webhook_secret(p->name);
  if (!secret) {
    co_return error(secret.error());
  }
  if (!*secret) {
    co_return error(dp::errc::forbidden,
                    fmt::format("project '{}' has no webhook secret: make one with POST "
                                "/v1/projects/{}/webhook-secret (deployctl link)",
                                p->name, p->name));
  }
  // The raw body, before anything parses it.
  auto names = forge::headers_of(*forge);
  if (auto ok = forge::verify(*forge, **secret, req.header(names.signature), req.body()); !ok) {
    co_return error(ok.error());
  }
  auto event_name = req.header(names.event);
  auto delivery = req.header(names.delivery);
  if (!event_name || event_name->empty()) {
    co_return error(dp::errc::invalid_argument,
                    fmt::format("the {} header is missing", names.event));
  }
  if (!delivery || delivery->empty() || delivery->size() > delivery_id_max) {
    co_return error(dp::errc::invalid_argument,
                    fmt::format("the {} header is missing or longer than {} characters",
                                names.delivery, delivery_id_max));
  }
  auto first = co_await hooks_.take_delivery(forge::to_string(*forge), *delivery, delivery_ttl);
  if (!first) {
    co_return error(first.error());
  }
  if (!*first) {
    co_return http::json_response(
        200, json::object{{"event", "ignored"},
                          {"delivery", *delivery},
                          {"reason", "this delivery id was received before: a replay"}});
  }
  auto res = co_await act_on_webhook(*p, *forge, *event_name, req.body());
  // Nothing was done: the forge's redelivery of the same id must be taken.
  if (res.status >= 500) {
    if (auto released = co_await hooks_.release_delivery(forge::to_string(*forge), *delivery);
        !released) {
      dp::log::warn("cannot forget a webhook delivery that failed; its redelivery is ignored",
                    {{"delivery", std::string(*delivery)}, {"error", released.error()}});
    }
  }
  co_return res;
}

asio::awaitable<response> service::impl::act_on_webhook(const proto::project& p,
                                                        forge::provider forge,
                                                        std::string_view event_name,
                                                        std::string_view body) {
  auto e = forge::parse_event(forge, event_name, body);
  if (!e) {
    co_return error(e.error());
  }
  json::object out{{"event", forge::to_string(e->kind)}};
  switch (e->kind) {
    case forge::event_kind::ping:
      co_return http::json_response(200, out);
    case forge::event_kind::ignored:
      out["reason"] = e->ignored_because;
      co_return http::json_response(200, out);
    case forge::event_kind::push:
    case forge::event_kind::pull_request_updated: {
      deployment_source source{.branch = e->branch,
                               .commit = non_empty(e->commit),
                               .commit_message = non_empty(e->commit_message),
                               .commit_author = non_empty(e->commit_author),
                               .pull_request = e->pull_request,
                               .trigger = proto::deployment_trigger::webhook,
                               .default_branch = non_empty(e->default_branch)};
      if (e->fork) {
        // A fork's code with the project's secrets would let anyone who opens a pull request
        // read them: off unless the project asks, and then without them.
        if (!p.fork_pull_requests) {
          out["pull_request"] = *e->pull_request;
          out["skipped"] = "fork pull request";
          out["reason"] = fmt::format(
              "skipped: fork pull request #{}: project '{}' does not build pull requests from "
              "forks (set fork_pull_requests: true; such builds get fork_env only)",
              *e->pull_request, p.name);
          co_return http::json_response(202, out);
        }
        source.branch = e->pull_ref;
        source.fork = true;
      }
      // The commit status target is written before the job is queued: a worker that took the
      // job first would find none and report no "pending".
      start_options so{
          .build_timeout_s = opts_.build_timeout_s,
          .before_queued = [this](const proto::deployment& d) -> asio::awaitable<void> {
            if (auto r = co_await note_commit_status(d); !r) {
              dp::log::warn("the deployment will report no commit status",
                            {{"deployment", d.id}, {"error", r.error()}});
            }
          }};
      auto d = co_await start_git_deployment(records_, p, std::move(source), std::move(so));
      if (!d) {
        co_return error(d.error());
      }
      out["deployment"] = deployment_json(*d);
      auto res = http::json_response(202, out);
      res.set("location", "/v1/deployments/" + d->id);
      co_return res;
    }
    case forge::event_kind::branch_deleted: {
      auto removed = co_await remove_branch_preview(records_, p.name, e->branch);
      if (!removed) {
        co_return error(removed.error());
      }
      out["branch"] = e->branch;
      out["removed"] = *removed;
      co_return http::json_response(200, out);
    }
    case forge::event_kind::pull_request_closed: {
      auto removed = co_await remove_pull_request_preview(records_, p.name, *e->pull_request);
      if (!removed) {
        co_return error(removed.error());
      }
      out["pull_request"] = *e->pull_request;
      out["removed"] = *removed;
      co_return http::json_response(200, out);
    }
  }
  co_return error(dp::errc::internal, "unhandled webhook event");
}

asio::awaitable<dp::result<void>> service::impl::note_commit_status(const proto::deployment& d) {
  if (!d.commit) {
    co_return dp::result<void>{};
  }
  auto f = co_await hooks_.forge(d.project);
  if (!f || !*f) {
    co_return f ? dp::result<void>{} : dp::result<void>(f.error());
  }
  co_return co_await hooks_.set_commit_status_target(
      d.id, *d.commit, site_url(opts_.site, d.alias.value_or(dp::immutable_alias(d.project, d.id))),
      commit_status_ttl);
}

asio::awaitable<response> service::impl::rotate_webhook_secret(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  auto secret = dp::random_hex(secret_bytes);
  if (auto r = co_await hooks_.set_webhook_secret(p->name, secret); !r) {
    co_return error(r.error());
  }
  // Shown this once: the forge keeps it, the API never returns it again.
  co_return http::json_response(201, json::object{{"project", p->name},
                                                  {"secret", secret},
                                                  {"webhook_paths", webhook_paths(p->name)}});
}

asio::awaitable<response> service::impl::put_forge(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  auto in = parse_forge_request(req.body());
  if (!in) {
    co_return error(in.error());
  }
  state::forge_settings f{
      .forge = in->forge, .api_url = in->api_url, .repository = in->repository, .token = in->token};
  if (auto r = co_await hooks_.set_forge(p->name, f); !r) {
    co_return error(r.error());
  }
  co_return http::json_response(200, json::object{{"forge", f.forge},
                                                  {"api_url", f.api_url},
                                                  {"repository", f.repository},
                                                  {"token_set", true}});
}

asio::awaitable<response> service::impl::list_hooks(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  auto all = co_await hooks_.list_hooks(p->name);
  if (!all) {
    co_return error(all.error());
  }
  json::array out;
  for (const auto& h : *all) {
    out.push_back(hook_json(h));
  }
  co_return http::json_response(200, json::object{{"hooks", std::move(out)}});
}

asio::awaitable<response> service::impl::create_hook(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  auto branch = parse_hook_request(req.body());
  if (!branch) {
    co_return error(branch.error());
  }
  if (p->git_url.empty()) {
    co_return error(dp::errc::conflict,
                    fmt::format("project '{}' has no git URL: a hook deploys a branch", p->name));
  }
  state::deploy_hook h{.id = "hook_" + dp::random_hex(8),
                       .project = p->name,
                       .branch = *branch,
                       .created_at = dp::now_ms()};
  auto secret = dp::random_hex(secret_bytes);
  // Only the secret's hash is stored: the URL is shown once.
  if (auto r = co_await hooks_.create_hook(h, forge::sha256_hex(secret)); !r) {
    co_return error(r.error());
  }
  auto out = hook_json(h);
  out["secret"] = secret;
  out["path"] = "/v1/hooks/" + secret;
  co_return http::json_response(201, out);
}

asio::awaitable<response> service::impl::delete_hook(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  auto removed = co_await hooks_.delete_hook(p->name, req.param("id"));
  if (!removed) {
    co_return error(removed.error());
  }
  if (!*removed) {
    co_return error(dp::errc::not_found,
                    fmt::format("project '{}' has no hook '{}'", p->name, req.param("id")));
  }
  co_return response(204);
}

asio::awaitable<response> service::impl::trigger_hook(http::request& req) {
  // Looked up by the secret's hash: the time taken says nothing about stored secrets.
  auto h = co_await hooks_.find_hook(forge::sha256_hex(req.param("secret")));
  if (!h) {
    co_return error(h.error());
  }
  auto p = co_await records_.get_project(h->project);
  if (!p) {
    co_return error(p.error());
  }
  deployment_source source{.branch = h->branch, .trigger = proto::deployment_trigger::hook};
  auto d = co_await start_git_deployment(records_, std::move(*p), std::move(source),
                                         start_options{opts_.build_timeout_s});
  if (!d) {
    co_return error(d.error());
  }
  auto res = http::json_response(202, deployment_json(*d));
  res.set("location", "/v1/deployments/" + d->id);
  co_return res;
}

}  // namespace dp::api
