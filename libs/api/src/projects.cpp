// The projects' handlers: create, list, get, patch, delete (with all their deployments).
#include <boost/json/value_from.hpp>

#include <algorithm>

#include "dp/buildplan/cache.hpp"
#include "dp/core/clock.hpp"
#include "dp/core/log.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/state/logbook.hpp"
#include "service_impl.hpp"

namespace dp::api {
namespace {

// A project as the API shows it: protection's password hash never leaves the server.
json::value project_json(const proto::project& p) {
  auto v = json::value_from(p);
  if (p.protection) {
    v.as_object()["protection"] = json::object{{"scope", proto::to_string(p.protection->scope)},
                                               {"username", p.protection->username},
                                               {"password_set", true}};
  }
  return v;
}

// The bytes of the project's build cache, from its index (__cache/<project>/index.json): 0
// without one, nullopt when it cannot be read (the usage then says null rather than failing).
asio::awaitable<std::optional<int64_t>> cache_bytes(storage::object_store& store,
                                                    std::string_view project) {
  auto unreadable = [&](const dp::error& e) {
    dp::log::warn("cannot read the build cache's index",
                  {{"project", std::string(project)}, {"error", e.message}});
    return std::nullopt;
  };
  auto got = co_await store.get(proto::cache_index_key(project));
  if (!got) {
    if (got.error().is(dp::errc::not_found)) {
      co_return 0;
    }
    co_return unreadable(got.error());
  }
  auto text = co_await got->read_all();
  if (!text) {
    co_return unreadable(text.error());
  }
  auto index = buildplan::parse_cache_index(*text);
  if (!index) {
    co_return unreadable(index.error());
  }
  co_return static_cast<int64_t>(index->total_bytes());
}

// What the project keeps in storage, `du`-style: its deployments' files (from their records)
// and its build cache, all in total_bytes.
json::object usage_json(const state::storage_usage& u, std::optional<int64_t> cache) {
  return json::object{{"outputs", {{"files", u.output_files}, {"bytes", u.output_bytes}}},
                      {"sources", {{"files", u.source_files}, {"bytes", u.source_bytes}}},
                      {"cache", {{"bytes", cache ? json::value(*cache) : json::value(nullptr)}}},
                      {"total_bytes", u.output_bytes + u.source_bytes + cache.value_or(0)},
                      {"deployments", u.deployments},
                      {"pruned", u.pruned}};
}

}  // namespace

asio::awaitable<response> service::impl::create_project(http::request& req) {
  auto p = parse_new_project(req.body(), opts_.allowed_git_protocols);
  if (!p) {
    co_return error(p.error());
  }
  p->created_at = dp::now_ms();
  if (auto r = co_await records_.create_project(*p); !r) {
    co_return error(r.error());
  }
  co_return http::json_response(201, project_json(*p));
}

asio::awaitable<response> service::impl::list_projects(http::request&) {
  auto names = co_await records_.project_names();
  if (!names) {
    co_return error(names.error());
  }
  json::array out;
  for (const auto& name : *names) {
    auto p = co_await records_.get_project(name);
    if (!p) {
      if (!p.error().is(dp::errc::not_found)) {
        co_return error(p.error());
      }
      continue;
    }
    auto usage = co_await records_.usage(name);
    if (!usage) {
      co_return error(usage.error());
    }
    // What the dashboard's overview shows of each project without a GET per project.
    auto live = co_await records_.resolve_alias(name);
    if (!live) {
      co_return error(live.error());
    }
    auto v = project_json(*p);
    v.as_object()["url"] = site_url(opts_.site, name);
    v.as_object()["production_deployment_id"] = *live ? json::value(**live) : json::value(nullptr);
    v.as_object()["usage"] = usage_json(*usage, co_await cache_bytes(*storage_, name));
    out.push_back(std::move(v));
  }
  co_return http::json_response(200, json::object{{"projects", std::move(out)}});
}

asio::awaitable<dp::result<proto::project>> service::impl::find_project(std::string_view name) {
  if (auto r = check_project_name("project name", name); !r) {
    co_return r.error();
  }
  co_return co_await records_.get_project(name);
}

asio::awaitable<void> service::impl::announce_routes(proto::route_event e) {
  auto project = e.project;
  if (auto r = co_await records_.publish_routes(std::move(e)); !r) {
    log::warn("route event not published; proxies see the change within their lookup TTL",
              {{"project", project}, {"error", r.error()}});
  }
}

asio::awaitable<response> service::impl::get_project(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  auto v = project_json(*p);
  v.as_object()["url"] = site_url(opts_.site, p->name);
  auto live = co_await records_.resolve_alias(p->name);
  if (!live) {
    co_return error(live.error());
  }
  v.as_object()["production_deployment_id"] = *live ? json::value(**live) : json::value(nullptr);
  // The policy in force: the project's overrides, else the platform's RETENTION_* settings.
  v.as_object()["retention"] = json::object{
      {"keep_deployments", p->keep_deployments.value_or(opts_.keep_deployments)},
      {"keep_production_days", p->keep_production_days.value_or(opts_.keep_production_days)}};
  auto usage = co_await records_.usage(p->name);
  if (!usage) {
    co_return error(usage.error());
  }
  v.as_object()["usage"] = usage_json(*usage, co_await cache_bytes(*storage_, p->name));
  auto effective = co_await effective_settings(p->name);
  if (!effective) {
    co_return error(effective.error());
  }
  v.as_object()["effective_settings"] = std::move(*effective);
  co_return http::json_response(200, v);
}

// The build settings of the newest deployment that got as far as planning its build (newest
// first, a page at a time), with its id; null when none did.
asio::awaitable<dp::result<json::value>> service::impl::effective_settings(
    const std::string& project) {
  constexpr int64_t page = 20;
  for (int64_t offset = 0;; offset += page) {
    auto ids = co_await records_.deployment_ids(project, offset, page);
    if (!ids) {
      co_return ids.error();
    }
    for (const auto& id : *ids) {
      auto d = co_await records_.get_deployment(id);
      if (!d && d.error().is(dp::errc::not_found)) {
        continue;
      }
      if (!d) {
        co_return d.error();
      }
      if (d->settings) {
        auto v = json::value_from(*d->settings);
        v.as_object()["deployment_id"] = d->id;
        co_return v;
      }
    }
    if (static_cast<int64_t>(ids->size()) < page) {
      co_return json::value(nullptr);
    }
  }
}

asio::awaitable<response> service::impl::patch_project(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  auto protection = p->protection;
  if (auto r = apply_project_patch(*p, req.body(), opts_.allowed_git_protocols); !r) {
    co_return error(r.error());
  }
  if (auto r = co_await records_.save_project(*p); !r) {
    co_return error(r.error());
  }
  if (p->protection != protection) {
    proto::route_event changed{.project = p->name};
    co_await announce_routes(std::move(changed));
  }
  co_return http::json_response(200, project_json(*p));
}

asio::awaitable<response> service::impl::delete_project(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  auto total = co_await records_.deployment_count(p->name);
  if (!total) {
    co_return error(total.error());
  }
  auto ids = co_await records_.deployment_ids(p->name, 0, *total);
  if (!ids) {
    co_return error(ids.error());
  }
  // Every alias the deletion removes, and the domains that lead to them, for the proxies.
  proto::route_event gone{.project = p->name, .aliases = {p->name}};
  auto previews = co_await records_.preview_labels(p->name);
  if (!previews) {
    co_return error(previews.error());
  }
  gone.aliases.insert(gone.aliases.end(), previews->begin(), previews->end());
  auto domains = co_await domains_.list(p->name);
  if (!domains) {
    co_return error(domains.error());
  }
  for (const auto& d : *domains) {
    gone.domains.push_back(d.fqdn);
  }
  std::vector<proto::deployment> all;
  for (const auto& id : *ids) {
    auto d = co_await records_.get_deployment(id);
    if (!d) {
      if (d.error().is(dp::errc::not_found)) {
        continue;
      }
      co_return error(d.error());
    }
    // A running build would keep writing: the caller cancels it first.
    if (!proto::is_final(d->status)) {
      co_return error(dp::errc::conflict, fmt::format("deployment {} is {}: cancel it first", d->id,
                                                      proto::to_string(d->status)));
    }
    if (d->alias) {
      gone.aliases.push_back(*d->alias);
    }
    all.push_back(std::move(*d));
  }
  for (const auto& d : all) {
    if (auto r = co_await remove_deployment(d); !r) {
      co_return error(r.error());
    }
  }
  if (auto r = co_await storage_->remove_prefix(proto::cache_prefix(p->name)); !r) {
    co_return error(r.error());
  }
  // Removes alias:<name> and the preview aliases too; the route event tells the proxies.
  if (auto r = co_await records_.delete_project(p->name); !r) {
    co_return error(r.error());
  }
  co_await announce_routes(std::move(gone));
  // A project made again under this name must not inherit its webhook secret or hooks.
  if (auto r = co_await hooks_.forget_project(p->name); !r) {
    co_return error(r.error());
  }
  co_return response(204);
}

asio::awaitable<response> service::impl::delete_cache(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  // A build running now may still write its archives and index: the next build uses them.
  auto removed = co_await storage_->remove_prefix(proto::cache_prefix(p->name));
  if (!removed) {
    co_return error(removed.error());
  }
  co_return http::json_response(200, json::object{{"project", p->name}, {"removed", *removed}});
}

}  // namespace dp::api
