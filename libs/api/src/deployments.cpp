// The deployments' handlers: create (from git or an uploaded archive, and the legacy POST
// /project), get, list, cancel, promote/rollback, delete.
#include <boost/json/value_from.hpp>

#include "dp/api/browser.hpp"
#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/core/log.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/state/logbook.hpp"
#include "service_impl.hpp"
#include "start_deployment.hpp"

namespace dp::api {

using proto::deployment_status;

namespace {

constexpr int create_attempts = 5;
constexpr size_t json_body_limit = 1024 * 1024;
// The records one filtered page of a deployment list reads at most.
constexpr int64_t filter_scan_limit = 1000;

}  // namespace

asio::awaitable<dp::result<void>> service::impl::remove_deployment(const proto::deployment& d) {
  auto removed = co_await storage_->remove_prefix(proto::output_prefix(d.id));
  if (!removed) {
    co_return removed.error();
  }
  if (d.git_url.empty()) {
    if (auto r = co_await storage_->remove(proto::source_archive_key(d.id)); !r) {
      co_return r.error();
    }
  }
  co_return co_await records_.delete_deployment(d);
}

asio::awaitable<dp::result<proto::deployment>> service::impl::deploy_archive(
    const proto::project& p, const std::string& archive, bool no_cache,
    proto::deployment_trigger trigger) {
  for (int attempt = 1;; ++attempt) {
    proto::deployment d;
    d.id = dp::new_deployment_id();
    d.project = p.name;
    d.created_at = dp::now_ms();
    d.source_bytes = static_cast<int64_t>(archive.size());
    d.trigger = trigger;
    if (no_cache) {
      // Known from the start; a container build reads it back (job_from_deployment).
      d.cache = "off";
    }
    proto::job j = job_for(p, d, no_cache, opts_.build_timeout_s);
    j.source_archive = proto::source_archive_key(d.id);
    storage::put_options po;
    po.content_type = "application/gzip";
    auto stored = co_await storage_->put_buffer(*j.source_archive, archive, std::move(po));
    if (!stored) {
      co_return stored.error();
    }
    auto r = co_await records_.create_deployment(d, j);
    if (r) {
      co_return d;
    }
    if (auto removed = co_await storage_->remove(*j.source_archive); !removed) {
      dp::log::warn("cannot remove the archive of a deployment not created",
                    {{"key", *j.source_archive}, {"error", removed.error()}});
    }
    if (!r.error().is(dp::errc::conflict) || attempt == create_attempts) {
      co_return r.error();
    }
  }
}

asio::awaitable<dp::result<proto::project>> service::impl::project_for(const deploy_request& req) {
  std::string name;
  if (req.project) {
    name = *req.project;
  } else if (auto derived = project_name_from_git_url(*req.git_url)) {
    name = *derived;
  } else {
    co_return dp::make_error(dp::errc::invalid_argument,
                             "cannot derive a project name from the git URL: give 'project'");
  }
  auto p = co_await records_.get_project(name);
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
  created.created_at = dp::now_ms();
  auto r = co_await records_.create_project(created);
  if (!r && r.error().is(dp::errc::conflict)) {
    // Created by a concurrent request: use theirs if it is the same repository. Not there:
    // the name is taken by an alias (the store's message says so).
    auto theirs = co_await records_.get_project(name);
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

asio::awaitable<response> service::impl::create_deployment(http::request& req) {
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
  co_return co_await deploy_git(std::move(*p), std::move(*in));
}

asio::awaitable<response> service::impl::create_project_deployment(http::request& req) {
  auto name = req.param("name");
  auto in = parse_deploy_request(req.body(), opts_.allowed_git_protocols, std::string(name));
  if (!in) {
    co_return error(in.error());
  }
  auto p = co_await find_project(name);
  if (!p) {
    co_return error(p.error());
  }
  co_return co_await deploy_git(std::move(*p), std::move(*in));
}

asio::awaitable<response> service::impl::deploy_git(proto::project p, deploy_request in) {
  deployment_source source{
      .branch = in.branch, .commit = in.commit, .trigger = in.trigger, .no_cache = in.no_cache};
  start_options so{opts_.build_timeout_s};
  auto d = co_await start_git_deployment(records_, std::move(p), std::move(source), so);
  if (!d) {
    co_return error(d.error());
  }
  auto res = http::json_response(202, deployment_json(*d));
  res.set("location", "/v1/deployments/" + d->id);
  co_return res;
}

asio::awaitable<response> service::impl::create_from_archive(http::request& req) {
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
  auto p = co_await records_.get_project(*name);
  if (!p && p.error().is(dp::errc::not_found)) {
    if (auto r = check_new_project_name("query parameter 'project'", *name); !r) {
      co_return error(r.error());
    }
    proto::project created;
    created.name = *name;
    created.created_at = dp::now_ms();
    // A concurrent first upload may have created it: read it back either way. Still not
    // there: the name is taken by an alias (the store's message says so).
    auto r = co_await records_.create_project(created);
    if (r || r.error().is(dp::errc::conflict)) {
      p = co_await records_.get_project(*name);
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
  auto no_cache = req.query("no_cache");
  if (no_cache && *no_cache != "true" && *no_cache != "false") {
    co_return error(dp::errc::invalid_argument, "query parameter 'no_cache' must be true or false");
  }
  auto trigger = proto::deployment_trigger::api;
  if (auto t = req.query("trigger")) {
    auto parsed = parse_request_trigger(*t);
    if (!parsed) {
      co_return error(dp::errc::invalid_argument,
                      "query parameter 'trigger' must be api, cli or dashboard");
    }
    trigger = *parsed;
  }
  auto d = co_await deploy_archive(*p, body, no_cache && *no_cache == "true", trigger);
  if (!d) {
    co_return error(d.error());
  }
  auto res = http::json_response(202, deployment_json(*d));
  res.set("location", "/v1/deployments/" + d->id);
  co_return res;
}

asio::awaitable<response> service::impl::legacy_project(http::request& req) {
  auto in = parse_legacy_deploy_request(req.body(), opts_.allowed_git_protocols);
  if (!in) {
    co_return error(in.error());
  }
  auto p = co_await project_for(*in);
  if (!p) {
    co_return error(p.error());
  }
  deployment_source source;
  start_options so{opts_.build_timeout_s};
  auto d = co_await start_git_deployment(records_, *p, source, so);
  if (!d) {
    co_return error(d.error());
  }
  co_return http::json_response(200, json::object{{"status", "queued"},
                                                  {"data",
                                                   {{"projectSlug", p->name},
                                                    {"url", site_url(opts_.site, p->name)},
                                                    {"deployment_id", d->id}}}});
}

asio::awaitable<dp::result<proto::deployment>> service::impl::find_deployment(std::string_view id) {
  if (!dp::is_deployment_id(id)) {
    co_return dp::make_error(dp::errc::not_found, "no deployment '{}'", id);
  }
  co_return co_await records_.get_deployment(id);
}

asio::awaitable<response> service::impl::get_deployment(http::request& req) {
  auto d = co_await find_deployment(req.param("id"));
  if (!d) {
    co_return error(d.error());
  }
  co_return http::json_response(200, deployment_json(*d));
}

asio::awaitable<response> service::impl::list_deployments(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  auto limit = parse_count(req.query("limit"), "limit", 20, 100);
  auto cursor = req.query("cursor");
  auto offset = parse_count(cursor ? cursor : req.query("offset"), cursor ? "cursor" : "offset", 0,
                            1'000'000'000);
  if (!limit || !offset) {
    co_return error(!limit ? limit.error() : offset.error());
  }
  // Filters: branch, target, status. The cursor is a position among all of the project's
  // deployments (newest first), so a filtered page reads on until it has `limit` matches or has
  // looked at filter_scan_limit records.
  auto branch = req.query("branch");
  auto target_text = req.query("target");
  auto status_text = req.query("status");
  std::optional<proto::deployment_target> target;
  std::optional<deployment_status> status;
  if (target_text && !(target = proto::parse_deployment_target(*target_text))) {
    co_return error(dp::errc::invalid_argument,
                    "query parameter 'target' must be production or preview");
  }
  if (status_text && !(status = proto::parse_deployment_status(*status_text))) {
    co_return error(dp::errc::invalid_argument,
                    "query parameter 'status' must be one of queued, cloning, installing, "
                    "building, uploading, ready, failed, canceled");
  }
  bool filtered = branch || target || status;
  auto matches = [&](const proto::deployment& d) {
    return (!branch || d.branch.value_or("") == *branch) && (!target || d.target == *target) &&
           (!status || d.status == *status);
  };
  auto total = co_await records_.deployment_count(p->name);
  if (!total) {
    co_return error(total.error());
  }
  json::array out;
  int64_t next = *offset;
  int64_t scanned = 0;
  while (static_cast<int64_t>(out.size()) < *limit && next < *total &&
         (scanned == 0 || (filtered && scanned < filter_scan_limit))) {
    int64_t batch = filtered ? std::max<int64_t>(*limit, 50) : *limit;
    auto ids = co_await records_.deployment_ids(p->name, next, batch);
    if (!ids) {
      co_return error(ids.error());
    }
    if (ids->empty()) {
      break;
    }
    for (const auto& id : *ids) {
      ++next;
      ++scanned;
      auto d = co_await records_.get_deployment(id);
      if (d && matches(*d)) {
        out.push_back(deployment_json(*d));
        if (static_cast<int64_t>(out.size()) == *limit) {
          break;
        }
      } else if (!d && !d.error().is(dp::errc::not_found)) {
        co_return error(d.error());
      }
    }
  }
  bool more = *limit > 0 && next < *total;
  co_return http::json_response(
      200, json::object{{"deployments", std::move(out)},
                        {"total", *total},
                        {"next_cursor", more ? json::value(std::to_string(next)) : nullptr}});
}

asio::awaitable<response> service::impl::cancel_deployment(http::request& req) {
  auto d = co_await find_deployment(req.param("id"));
  if (!d) {
    co_return error(d.error());
  }
  if (proto::is_final(d->status)) {
    co_return error(dp::errc::conflict,
                    fmt::format("deployment {} is already {}", d->id, proto::to_string(d->status)));
  }
  proto::cancel_request cancel{
      .deployment_id = d->id, .requested_at = dp::now_ms(), .reason = "canceled by request"};
  auto outcome = co_await records_.request_cancel(cancel);
  if (!outcome) {
    co_return error(outcome.error());
  }
  if (!outcome->applied && proto::is_final(outcome->previous)) {
    co_return error(dp::errc::conflict, fmt::format("deployment {} is already {}", d->id,
                                                    proto::to_string(outcome->previous)));
  }
  auto now = co_await records_.get_deployment(d->id);
  if (!now) {
    co_return error(now.error());
  }
  co_return http::json_response(202, deployment_json(*now));
}

asio::awaitable<response> service::impl::promote(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  auto id = parse_promote_request(req.body());
  if (!id) {
    co_return error(id.error());
  }
  auto d = co_await records_.get_deployment(*id);
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
  // set_alias refuses it too, atomically; this answer only says it first.
  if (d->pruned_at) {
    co_return error(dp::errc::conflict,
                    fmt::format("deployment {} was pruned by the retention policy: its files are "
                                "gone; deploy its commit again instead",
                                d->id));
  }
  if (auto r = co_await records_.set_alias(p->name, p->name, d->id); !r) {
    co_return error(r.error());
  }
  co_return http::json_response(200, json::object{{"project", p->name},
                                                  {"deployment_id", d->id},
                                                  {"alias_url", site_url(opts_.site, p->name)}});
}

asio::awaitable<response> service::impl::delete_deployment(http::request& req) {
  auto d = co_await find_deployment(req.param("id"));
  if (!d) {
    co_return error(d.error());
  }
  auto live = co_await records_.resolve_alias(d->project);
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
  if (d->alias) {
    proto::route_event changed{.project = d->project, .aliases = {*d->alias}};
    co_await announce_routes(std::move(changed));
  }
  co_return response(204);
}

}  // namespace dp::api
