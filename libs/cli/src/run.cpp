#include "dp/cli/run.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_to.hpp>

#include <array>

#include "api_client.hpp"
#include "archive.hpp"
#include "dp/cli/sse.hpp"
#include "dp/proto/json.hpp"

namespace dp::cli {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

int exit_for(const dp::error& e) {
  if (e.is(errc::unavailable) || e.is(errc::timeout)) {
    return exit_unreachable;
  }
  if (e.is(errc::invalid_argument) || e.is(errc::too_large)) {
    return exit_bad_input;
  }
  return exit_failed;
}

int exit_for(proto::deployment_status s) {
  return s == proto::deployment_status::ready ? exit_ok : exit_failed;
}

class session {
 public:
  session(http_client::client& http, const options& o, std::FILE* out, std::FILE* err)
      : api_(http, o), opts_(o), out_(out), err_(err) {}

  asio::awaitable<int> run(const command& c) {
    switch (c.what) {
      case verb::deploy:
        co_return co_await deploy(c);
      case verb::ls:
        co_return co_await ls(c);
      case verb::logs:
        co_return co_await logs(c);
      case verb::promote:
        co_return co_await promote(c.target, c.deployment_id, "");
      case verb::rollback:
        co_return co_await rollback(c.target);
      case verb::cancel:
        co_return co_await cancel(c.target);
      case verb::cache_clear:
        co_return co_await clear_cache(c.target);
      case verb::hooks_ls:
        co_return co_await list_hooks(*c.project);
      case verb::hooks_create:
        co_return co_await create_hook(*c.project, c.target);
      case verb::hooks_rm:
        co_return co_await remove_hook(*c.project, c.target);
      case verb::link:
        co_return co_await link(c.target, c.git_url);
      case verb::env:
        co_return co_await env(c);
      case verb::domains_ls:
        co_return co_await list_domains(c.target);
      case verb::domains_add:
      case verb::domains_rm:
      case verb::domains_verify:
      case verb::domains_primary:
      case verb::domains_serve:
        co_return co_await change_domain(c.what, c.target, c.domain, c.ref);
      case verb::protect:
        co_return co_await protect(c);
      case verb::forks:
      case verb::shadowing:
        co_return co_await project_setting(c);
    }
    co_return exit_bad_input;
  }

 private:
  void print(std::string_view s) {
    std::fwrite(s.data(), 1, s.size(), out_);
    std::fflush(out_);
  }
  int fail(const dp::error& e) {
    std::fprintf(err_, "deployctl: %s\n", e.message.c_str());
    return exit_for(e);
  }

  asio::awaitable<int> deploy(const command& c) {
    dp::result<json::value> r;
    if (c.target_is_directory) {
      auto project = c.project ? *c.project : project_name_for_directory(c.target);
      if (project.empty()) {
        co_return fail(dp::make_error(errc::invalid_argument,
                                      "cannot derive a project name from '{}': give --project",
                                      c.target));
      }
      auto packed = co_await pack_directory(c.target, opts_.max_archive_bytes);
      if (!packed) {
        co_return fail(packed.error());
      }
      print(fmt::format("packed {} ({}), uploading\n", c.target, human_size(packed->size)));
      r = co_await api_.upload(project, packed->path, c.no_cache);
    } else {
      json::object body{{"git_url", c.target}, {"trigger", "cli"}};
      if (c.project) {
        body["project"] = *c.project;
      }
      if (c.ref) {
        body["branch"] = *c.ref;
      }
      if (c.commit) {
        body["commit"] = *c.commit;
      }
      if (c.no_cache) {
        body["no_cache"] = true;
      }
      r = co_await api_.call("POST", "/v1/deployments", json::serialize(body));
    }
    if (!r) {
      co_return fail(r.error());
    }
    auto v = parse_deployment_view(*r);
    if (!v) {
      co_return fail(v.error());
    }
    if (!c.follow) {
      print(render_queued(*v));
      co_return exit_ok;
    }
    print(fmt::format("deployment {} of {} queued\n", v->d.id, v->d.project));
    co_return co_await follow(v->d.id);
  }

  // Streams the logs to the final status, reconnecting with Last-Event-ID when the stream ends
  // early (an api-server restart, a dropped slow client, a network blip).
  asio::awaitable<int> follow(const std::string& id) {
    int64_t last = 0;
    int failures = 0;
    phase_tracker phases;
    std::array<char, 16 * 1024> buf{};
    auto ex = co_await asio::this_coro::executor;
    for (;;) {
      auto stream = co_await api_.open_logs(id, last);
      std::optional<dp::error> problem;
      if (!stream) {
        problem = stream.error();
      } else if (stream->status() != 200) {
        std::string body;
        for (;;) {
          auto n = co_await stream->read_some(buf);
          if (!n || *n == 0 || body.size() > 64 * 1024) {
            break;
          }
          body.append(buf.data(), *n);
        }
        co_return fail(api_error(stream->status(), body));
      } else {
        // A fresh parser per connection: a half event of a dropped stream is not resumed.
        sse_parser parser;
        for (bool open = true; open;) {
          auto n = co_await stream->read_some(buf);
          if (!n || *n == 0) {
            if (!n) {
              problem = n.error();
            }
            break;
          }
          for (auto& e : parser.feed({buf.data(), *n})) {
            if (e.event == "log") {
              auto le = proto::parse_log_event(std::string_view(e.data));
              if (!le || le->seq <= last) {
                continue;  // a repeat at a resume seam, or a line this CLI cannot read
              }
              last = le->seq;
              failures = 0;
              auto text = render_log(*le, opts_.color);
              if (auto p = phases.feed(*le, opts_.color)) {
                text += *p;
              }
              print(text);
            } else if (e.event == "status") {
              boost::system::error_code ec;
              auto v = json::parse(e.data, ec);
              auto d = ec ? dp::result<deployment_view>(
                                dp::make_error(errc::protocol, "the final status is not JSON"))
                          : parse_deployment_view(v);
              if (!d) {
                co_return fail(d.error());
              }
              print(render_result(*d, opts_.color));
              co_return exit_for(d->d.status);
            } else if (e.event == "error") {
              problem = dp::make_error(errc::unavailable, "log stream dropped: {}", e.data);
              open = false;
              break;
            }
          }
        }
      }
      if (++failures > opts_.stream_retries) {
        co_return fail(problem ? *problem
                               : dp::make_error(errc::unavailable,
                                                "the log stream of {} kept ending early", id));
      }
      asio::steady_timer wait(ex, opts_.retry_delay);
      co_await wait.async_wait(asio::use_awaitable);
    }
  }

  asio::awaitable<int> logs(const command& c) {
    if (c.follow) {
      co_return co_await follow(c.target);
    }
    int64_t since = 0;
    for (;;) {
      auto r = co_await api_.call(
          "GET", fmt::format("/v1/deployments/{}/logs?since={}", encode_component(c.target), since),
          "");
      if (!r) {
        co_return fail(r.error());
      }
      const auto* events = r->as_object().if_contains("events");
      if (!events || !events->is_array()) {
        co_return fail(dp::make_error(errc::protocol, "unexpected logs answer from the API"));
      }
      std::string text;
      for (const auto& ev : events->get_array()) {
        auto le = proto::parse_log_event(ev);
        if (!le) {
          co_return fail(
              dp::make_error(errc::protocol, "unexpected log event: {}", le.error().message));
        }
        text += render_log(*le, opts_.color);
        since = le->seq;
      }
      print(text);
      if (events->get_array().empty()) {
        co_return exit_ok;
      }
    }
  }

  asio::awaitable<int> ls(const command& c) {
    if (!c.project) {
      auto r = co_await api_.call("GET", "/v1/projects", "");
      if (!r) {
        co_return fail(r.error());
      }
      std::vector<project_view> projects;
      if (const auto* a = r->as_object().if_contains("projects"); a && a->is_array()) {
        for (const auto& p : a->get_array()) {
          auto parsed = proto::parse_project(p);
          if (!parsed) {
            co_return fail(parsed.error());
          }
          project_view v{std::move(*parsed), std::nullopt, std::nullopt};
          const auto* usage = p.is_object() ? p.get_object().if_contains("usage") : nullptr;
          const auto* u = usage && usage->is_object() ? &usage->get_object() : nullptr;
          if (const auto* b = u ? u->if_contains("total_bytes") : nullptr; b && b->is_int64()) {
            v.stored_bytes = b->get_int64();
          }
          const auto* cache = u ? u->if_contains("cache") : nullptr;
          if (const auto* b =
                  cache && cache->is_object() ? cache->get_object().if_contains("bytes") : nullptr;
              b && b->is_int64()) {
            v.cache_bytes = b->get_int64();
          }
          projects.push_back(std::move(v));
        }
      }
      print(render_projects(projects));
      co_return exit_ok;
    }
    auto production = co_await production_of(*c.project);
    if (!production) {
      co_return fail(production.error());
    }
    auto page = co_await deployments_page(*c.project, 0);
    if (!page) {
      co_return fail(page.error());
    }
    print(render_deployments(page->items, *production));
    if (page->next) {
      print("(the 100 newest; older ones: the API's ?cursor=)\n");
    }
    co_return exit_ok;
  }

  asio::awaitable<dp::result<std::optional<std::string>>> production_of(
      const std::string& project) {
    auto r = co_await api_.call("GET", "/v1/projects/" + encode_component(project), "");
    if (!r) {
      co_return r.error();
    }
    const auto* id = r->as_object().if_contains("production_deployment_id");
    if (id && id->is_string()) {
      co_return std::optional<std::string>(std::string(id->get_string()));
    }
    co_return std::optional<std::string>();
  }

  struct page {
    std::vector<deployment_view> items;
    std::optional<int64_t> next;
  };

  asio::awaitable<dp::result<page>> deployments_page(const std::string& project, int64_t cursor) {
    auto r = co_await api_.call("GET",
                                fmt::format("/v1/projects/{}/deployments?limit=100&cursor={}",
                                            encode_component(project), cursor),
                                "");
    if (!r) {
      co_return r.error();
    }
    page out;
    const auto& o = r->as_object();
    if (const auto* a = o.if_contains("deployments"); a && a->is_array()) {
      for (const auto& d : a->get_array()) {
        auto v = parse_deployment_view(d);
        if (!v) {
          co_return v.error();
        }
        out.items.push_back(std::move(*v));
      }
    }
    if (const auto* n = o.if_contains("next_cursor"); n && n->is_string()) {
      out.next = std::stoll(std::string(n->get_string()));
    }
    co_return out;
  }

  asio::awaitable<int> promote(const std::string& project, const std::string& id,
                               std::string_view from) {
    json::object body{{"deployment_id", id}};
    auto r = co_await api_.call("POST", "/v1/projects/" + encode_component(project) + "/promote",
                                json::serialize(body));
    if (!r) {
      co_return fail(r.error());
    }
    std::string url;
    if (const auto* u = r->as_object().if_contains("alias_url"); u && u->is_string()) {
      url = u->get_string();
    }
    if (from.empty()) {
      print(fmt::format("{} is now in production for {}: {}\n", id, project, url));
    } else {
      print(fmt::format("rolled back {} from {} to {}: {}\n", project, from, id, url));
    }
    co_return exit_ok;
  }

  // The newest ready deployment older than the one in production (ids sort by creation time).
  asio::awaitable<int> rollback(const std::string& project) {
    auto production = co_await production_of(project);
    if (!production) {
      co_return fail(production.error());
    }
    if (!*production) {
      co_return fail(dp::make_error(
          errc::conflict, "{} has nothing in production: promote a deployment instead", project));
    }
    const std::string& current = **production;
    std::optional<int64_t> cursor = 0;
    while (cursor) {
      auto p = co_await deployments_page(project, *cursor);
      if (!p) {
        co_return fail(p.error());
      }
      for (const auto& v : p->items) {
        if (v.d.id < current && v.d.status == proto::deployment_status::ready) {
          co_return co_await promote(project, v.d.id, current);
        }
      }
      cursor = p->next;
    }
    co_return fail(dp::make_error(errc::conflict,
                                  "{} has no ready deployment older than {} to roll back to",
                                  project, current));
  }

  asio::awaitable<int> clear_cache(const std::string& project) {
    auto r =
        co_await api_.call("DELETE", "/v1/projects/" + encode_component(project) + "/cache", "");
    if (!r) {
      co_return fail(r.error());
    }
    int64_t removed = 0;
    if (const auto* n = r->as_object().if_contains("removed"); n && n->is_int64()) {
      removed = n->get_int64();
    }
    print(fmt::format("build cache of {} emptied ({} objects removed)\n", project, removed));
    co_return exit_ok;
  }

  std::string hooks_path(const std::string& project) {
    return "/v1/projects/" + encode_component(project) + "/hooks";
  }

  asio::awaitable<int> list_hooks(const std::string& project) {
    auto r = co_await api_.call("GET", hooks_path(project), "");
    if (!r) {
      co_return fail(r.error());
    }
    std::vector<hook_view> hooks;
    if (const auto* a = r->as_object().if_contains("hooks"); a && a->is_array()) {
      for (const auto& h : a->get_array()) {
        const auto& o = h.as_object();
        hook_view v;
        v.id = json::value_to<std::string>(o.at("id"));
        v.branch = json::value_to<std::string>(o.at("branch"));
        v.created_at = o.at("created_at").to_number<int64_t>();
        hooks.push_back(std::move(v));
      }
    }
    print(render_hooks(hooks));
    co_return exit_ok;
  }

  asio::awaitable<int> create_hook(const std::string& project, const std::string& branch) {
    auto body = json::serialize(json::object{{"branch", branch}});
    auto r = co_await api_.call("POST", hooks_path(project), body);
    if (!r) {
      co_return fail(r.error());
    }
    const auto& o = r->as_object();
    std::string_view base = opts_.api_url;
    while (base.ends_with('/')) {
      base.remove_suffix(1);
    }
    print(
        fmt::format("hook {} deploys {} of {}:\n  curl -X POST {}{}\n(the URL is the "
                    "credential, shown this once: revoke it with deployctl hooks rm {})\n",
                    o.at("id").as_string().c_str(), branch, project, base,
                    o.at("path").as_string().c_str(), o.at("id").as_string().c_str()));
    co_return exit_ok;
  }

  asio::awaitable<int> remove_hook(const std::string& project, const std::string& id) {
    auto r = co_await api_.call("DELETE", hooks_path(project) + "/" + encode_component(id), "");
    if (!r) {
      co_return fail(r.error());
    }
    print(fmt::format("hook {} of {} revoked\n", id, project));
    co_return exit_ok;
  }

  // The project for the repository (made when missing), then a new webhook secret.
  asio::awaitable<int> link(const std::string& project, const std::string& git_url) {
    auto body = json::serialize(json::object{{"name", project}, {"git_url", git_url}});
    auto made = co_await api_.call("POST", "/v1/projects", body);
    if (!made && made.error().is(errc::conflict)) {
      auto found = co_await api_.call("GET", "/v1/projects/" + encode_component(project), "");
      if (!found) {
        co_return fail(made.error());
      }
      const auto* url = found->as_object().if_contains("git_url");
      if (!url || !url->is_string() || url->get_string() != git_url) {
        co_return fail(dp::make_error(
            errc::conflict, "project '{}' builds from another git URL: PATCH its git_url first",
            project));
      }
    } else if (!made) {
      co_return fail(made.error());
    }
    auto r = co_await api_.call(
        "POST", "/v1/projects/" + encode_component(project) + "/webhook-secret", "");
    if (!r) {
      co_return fail(r.error());
    }
    print(render_link(project, git_url, opts_.api_url,
                      r->as_object().at("secret").as_string().c_str()));
    co_return exit_ok;
  }

  // Shows or changes the project's protection; a new password comes from stdin, never argv
  // (which other users of the machine can read).
  asio::awaitable<int> protect(const command& c) {
    auto path = "/v1/projects/" + encode_component(c.target);
    if (c.protection_scope.empty()) {
      auto got = co_await api_.call("GET", path, "");
      if (!got) {
        co_return fail(got.error());
      }
      const auto* p = got->as_object().if_contains("protection");
      if (p == nullptr || !p->is_object()) {
        print("off\n");
      } else {
        print(fmt::format("{} (user {})\n", field(p->get_object(), "scope"),
                          field(p->get_object(), "username")));
      }
      co_return exit_ok;
    }
    json::object protection{{"scope", c.protection_scope}};
    if (!c.protection_user.empty()) {
      std::string password;
      for (int ch = std::fgetc(stdin); ch != EOF && ch != '\n'; ch = std::fgetc(stdin)) {
        password += static_cast<char>(ch);
      }
      if (!password.empty() && password.back() == '\r') {
        password.pop_back();
      }
      if (password.empty()) {
        co_return fail(dp::make_error(errc::invalid_argument,
                                      "protect: give the password on the first line of stdin"));
      }
      protection["username"] = c.protection_user;
      protection["password"] = std::move(password);
    }
    json::object body{{"protection", std::move(protection)}};
    auto r = co_await api_.call("PATCH", path, json::serialize(body));
    if (!r) {
      co_return fail(r.error());
    }
    print(fmt::format("protection of {}: {}\n", c.target, c.protection_scope));
    co_return exit_ok;
  }

  // forks (fork_pull_requests, shown and set as on/off) and shadowing (redirects_shadowing):
  // one field of the project, shown, or set with a PATCH of that field alone.
  asio::awaitable<int> project_setting(const command& c) {
    auto path = "/v1/projects/" + encode_component(c.target);
    bool forks = c.what == verb::forks;
    std::string_view key = forks ? "fork_pull_requests" : "redirects_shadowing";
    if (c.setting.empty()) {
      auto got = co_await api_.call("GET", path, "");
      if (!got) {
        co_return fail(got.error());
      }
      const auto* v = got->as_object().if_contains(key);
      if (forks) {
        print(v != nullptr && v->is_bool() && v->get_bool() ? "on\n" : "off\n");
      } else {
        print(fmt::format("{}\n",
                          v != nullptr && v->is_string() ? v->get_string().c_str() : "files"));
      }
      co_return exit_ok;
    }
    json::object body;
    if (forks) {
      body[key] = c.setting == "on";
    } else {
      body[key] = c.setting;
    }
    auto r = co_await api_.call("PATCH", path, json::serialize(body));
    if (!r) {
      co_return fail(r.error());
    }
    print(fmt::format("{} of {}: {}\n", key, c.target, c.setting));
    co_return exit_ok;
  }

  // Lists one env field of the project, or changes it with one PATCH of the whole field.
  asio::awaitable<int> env(const command& c) {
    auto path = "/v1/projects/" + encode_component(c.target);
    auto got = co_await api_.call("GET", path, "");
    if (!got) {
      co_return fail(got.error());
    }
    json::object vars;
    if (const auto* e = got->as_object().if_contains(c.env_field); e && e->is_object()) {
      vars = e->get_object();
    }
    if (c.env_changes.empty()) {
      for (const auto& [name, value] : vars) {
        print(fmt::format("{}={}\n", std::string_view(name),
                          value.is_string() ? std::string_view(value.get_string()) : ""));
      }
      co_return exit_ok;
    }
    for (const auto& [name, value] : c.env_changes) {
      if (value) {
        vars[name] = *value;
      } else {
        vars.erase(name);
      }
    }
    json::object body{{c.env_field, std::move(vars)}};
    auto r = co_await api_.call("PATCH", path, json::serialize(body));
    if (!r) {
      co_return fail(r.error());
    }
    print(fmt::format("{} of {} updated\n", c.env_field, c.target));
    co_return exit_ok;
  }

  static std::string field(const json::object& o, std::string_view k) {
    const auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
  }

  asio::awaitable<int> list_domains(const std::string& project) {
    auto r =
        co_await api_.call("GET", "/v1/projects/" + encode_component(project) + "/domains", "");
    if (!r) {
      co_return fail(r.error());
    }
    print(render_domains(r->as_object().at("domains").as_array()));
    co_return exit_ok;
  }

  asio::awaitable<int> change_domain(verb what, const std::string& project,
                                     const std::string& domain,
                                     const std::optional<std::string>& branch) {
    std::string base = "/v1/projects/" + encode_component(project) + "/domains";
    std::string one = base + "/" + encode_component(domain);
    // Bodies built before the co_await (g++ 12: "array used as initializer").
    json::value branch_value = branch ? json::value(*branch) : json::value(nullptr);
    json::object add_body{{"domain", domain}};
    if (branch) {
      add_body["branch"] = branch_value;
    }
    json::object primary_body{{"primary", true}};
    json::object serve_body{{"branch", branch_value}};
    dp::result<json::value> r;
    if (what == verb::domains_add) {
      r = co_await api_.call("POST", base, json::serialize(add_body));
    } else if (what == verb::domains_verify) {
      r = co_await api_.call("POST", one + "/verify", "");
    } else if (what == verb::domains_primary) {
      r = co_await api_.call("PATCH", one, json::serialize(primary_body));
    } else if (what == verb::domains_serve) {
      r = co_await api_.call("PATCH", one, json::serialize(serve_body));
    } else {
      r = co_await api_.call("DELETE", one, "");
    }
    if (!r) {
      co_return fail(r.error());
    }
    if (what == verb::domains_rm) {
      print(fmt::format("{} removed from {}: no longer served\n", domain, project));
      co_return exit_ok;
    }
    const auto& d = r->as_object();
    std::string name = field(d, "domain");
    auto serves =
        field(d, "branch").empty() ? std::string("production") : "branch " + field(d, "branch");
    if (what == verb::domains_add) {
      const auto& v = d.at("verification").as_object();
      print(fmt::format(
          "{} added to {} for {} (pending: not served until verified)\n"
          "Point it at the platform (A/AAAA to the proxy's address, or a CNAME to a name that has "
          "them), and prove it is yours: a TXT record\n  {} = {}\nor leave it to the platform "
          "to fetch {} through the proxy. Then run\n  deployctl domains verify {} {}\n",
          name, project, serves, field(v, "txt_name"), field(v, "token"), field(v, "url"), project,
          name));
    } else if (what == verb::domains_verify) {
      auto by = field(d.at("verification").as_object(), "verified_by");
      print(fmt::format("{} is verified and served for {} ({}{})\n", name, project, serves,
                        by.empty() ? "" : ", proven by " + by));
    } else if (what == verb::domains_serve) {
      print(fmt::format("{} serves {} of {}\n", name, serves, project));
    } else {
      print(fmt::format("{} is the primary domain of {}\n", name, project));
    }
    co_return exit_ok;
  }

  asio::awaitable<int> cancel(const std::string& id) {
    auto r = co_await api_.call("POST", "/v1/deployments/" + encode_component(id) + "/cancel", "");
    if (!r) {
      co_return fail(r.error());
    }
    auto v = parse_deployment_view(*r);
    if (!v) {
      co_return fail(v.error());
    }
    print(fmt::format("deployment {} is {}\n", v->d.id, proto::to_string(v->d.status)));
    co_return exit_ok;
  }

  api_client api_;
  const options& opts_;
  std::FILE* out_;
  std::FILE* err_;
};

}  // namespace

int run(const command& cmd, const options& opts, std::FILE* out, std::FILE* err) {
  asio::io_context ioc(1);
  http_client::client http(ioc.get_executor());
  session s(http, opts, out, err);
  int code = exit_failed;
  asio::co_spawn(ioc, s.run(cmd), [&](std::exception_ptr e, int c) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        std::fprintf(err, "deployctl: internal error: %s\n", x.what());
      }
      code = exit_failed;
    } else {
      code = c;
    }
  });
  ioc.run();
  return code;
}

}  // namespace dp::cli
