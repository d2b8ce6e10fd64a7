// The projects' handlers: create, list, get, patch, delete (with all their deployments).
#include <boost/json/value_from.hpp>

#include <algorithm>

#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/state/logbook.hpp"
#include "service_impl.hpp"

namespace dp::api {

asio::awaitable<response> service::impl::create_project(http::request& req) {
  auto p = parse_new_project(req.body(), opts_.allowed_git_protocols);
  if (!p) {
    co_return error(p.error());
  }
  p->created_at = state::now_ms();
  if (auto r = co_await records_.create_project(*p); !r) {
    co_return error(r.error());
  }
  co_return http::json_response(201, json::value_from(*p));
}

asio::awaitable<response> service::impl::list_projects(http::request&) {
  auto names = co_await records_.project_names();
  if (!names) {
    co_return error(names.error());
  }
  std::sort(names->begin(), names->end());
  json::array out;
  for (const auto& name : *names) {
    auto p = co_await records_.get_project(name);
    if (p) {
      out.push_back(json::value_from(*p));
    } else if (!p.error().is(dp::errc::not_found)) {
      co_return error(p.error());
    }
  }
  co_return http::json_response(200, json::object{{"projects", std::move(out)}});
}

asio::awaitable<dp::result<proto::project>> service::impl::find_project(std::string_view name) {
  if (auto r = check_project_name("project name", name); !r) {
    co_return r.error();
  }
  co_return co_await records_.get_project(name);
}

asio::awaitable<response> service::impl::get_project(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  auto v = json::value_from(*p);
  v.as_object()["url"] = site_url(opts_.site, p->name);
  auto live = co_await records_.resolve_alias(p->name);
  if (!live) {
    co_return error(live.error());
  }
  v.as_object()["production_deployment_id"] = *live ? json::value(**live) : json::value(nullptr);
  co_return http::json_response(200, v);
}

asio::awaitable<response> service::impl::patch_project(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  if (auto r = apply_project_patch(*p, req.body(), opts_.allowed_git_protocols); !r) {
    co_return error(r.error());
  }
  if (auto r = co_await records_.save_project(*p); !r) {
    co_return error(r.error());
  }
  co_return http::json_response(200, json::value_from(*p));
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
  // Removes alias:<name> too; proxies see it within their alias TTL (alias events only ever
  // name a deployment to serve).
  if (auto r = co_await records_.delete_project(p->name); !r) {
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
