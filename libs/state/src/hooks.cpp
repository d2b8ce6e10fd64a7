#include "dp/state/hooks.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <map>
#include <tuple>

#include "dp/redis/client.hpp"

namespace dp::state {
namespace {

namespace json = boost::json;

template <class T>
using task = boost::asio::awaitable<dp::result<T>>;

std::map<std::string, std::string> fields_of(const redis::reply& r) {
  std::map<std::string, std::string> out;
  const auto& e = r.elements();
  for (size_t i = 0; i + 1 < e.size(); i += 2) {
    out[e[i].as_string()] = e[i + 1].as_string();
  }
  return out;
}

// A stored hook entry: JSON {"id","branch","created_at","secret_sha256"}.
std::optional<std::pair<deploy_hook, std::string>> hook_from_json(std::string_view project,
                                                                  std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return std::nullopt;
  }
  const auto& o = v.get_object();
  auto str = [&](std::string_view k) {
    const auto* f = o.if_contains(k);
    return f && f->is_string() ? std::string(f->get_string()) : std::string();
  };
  deploy_hook h{.id = str("id"), .project = std::string(project), .branch = str("branch")};
  if (const auto* c = o.if_contains("created_at"); c && c->is_int64()) {
    h.created_at = c->get_int64();
  }
  return std::pair{std::move(h), str("secret_sha256")};
}

dp::result<void> check_replies(const std::vector<redis::reply>& replies) {
  for (const auto& r : replies) {
    if (r.is_error()) {
      return dp::make_error(dp::errc::protocol, "redis: {}", r.as_string());
    }
  }
  return {};
}

}  // namespace

hooks::hooks(redis::client& redis, proto::keys keys) : redis_(redis), keys_(std::move(keys)) {}

task<void> hooks::set_webhook_secret(std::string_view project, std::string_view secret) {
  auto r = co_await redis_.exec("HSET", keys_.project_webhook(project), "secret", secret);
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<std::optional<std::string>> hooks::webhook_secret(std::string_view project) {
  co_return co_await redis_.hget(keys_.project_webhook(project), "secret");
}

task<void> hooks::set_forge(std::string_view project, const forge_settings& f) {
  auto r = co_await redis_.exec("HSET", keys_.project_webhook(project), "forge", f.forge,
                                "forge_api_url", f.api_url, "forge_repository", f.repository,
                                "forge_token", f.token);
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<std::optional<forge_settings>> hooks::forge(std::string_view project) {
  auto r = co_await redis_.exec("HGETALL", keys_.project_webhook(project));
  if (!r) {
    co_return r.error();
  }
  auto f = fields_of(*r);
  if (!f.contains("forge")) {
    co_return std::optional<forge_settings>();
  }
  co_return std::optional<forge_settings>(forge_settings{.forge = f["forge"],
                                                         .api_url = f["forge_api_url"],
                                                         .repository = f["forge_repository"],
                                                         .token = f["forge_token"]});
}

task<void> hooks::set_commit_status_target(std::string_view deployment_id, std::string_view sha,
                                           std::string_view target_url, std::chrono::seconds ttl) {
  auto key = keys_.commit_status(deployment_id);
  std::vector<std::vector<std::string>> commands{
      {"HSET", key, "sha", std::string(sha), "target_url", std::string(target_url)},
      {"EXPIRE", key, std::to_string(ttl.count())}};
  auto r = co_await redis_.pipeline(std::move(commands));
  if (!r) {
    co_return r.error();
  }
  co_return check_replies(*r);
}

task<std::optional<hooks::commit_status_target>> hooks::commit_status_target_of(
    std::string_view deployment_id) {
  auto r = co_await redis_.exec("HGETALL", keys_.commit_status(deployment_id));
  if (!r) {
    co_return r.error();
  }
  auto f = fields_of(*r);
  if (f["sha"].empty()) {
    co_return std::optional<commit_status_target>();
  }
  co_return std::optional<commit_status_target>(
      commit_status_target{.sha = f["sha"], .target_url = f["target_url"]});
}

task<bool> hooks::take_delivery(std::string_view provider, std::string_view id,
                                std::chrono::seconds ttl) {
  auto r = co_await redis_.exec("SET", keys_.webhook_delivery(provider, id), "1", "NX", "EX",
                                std::to_string(ttl.count()));
  if (!r) {
    co_return r.error();
  }
  co_return !r->is_nil();
}

task<void> hooks::release_delivery(std::string_view provider, std::string_view id) {
  auto r = co_await redis_.exec("DEL", keys_.webhook_delivery(provider, id));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<void> hooks::create_hook(const deploy_hook& h, std::string_view secret_sha256) {
  json::object entry{{"id", h.id},
                     {"branch", h.branch},
                     {"created_at", h.created_at},
                     {"secret_sha256", secret_sha256}};
  std::vector<std::vector<std::string>> commands{
      {"MULTI"},
      {"HSET", keys_.hook(secret_sha256), "project", h.project, "id", h.id, "branch", h.branch},
      {"HSET", keys_.project_hooks(h.project), h.id, json::serialize(entry)},
      {"EXEC"}};
  auto r = co_await redis_.pipeline(std::move(commands));
  if (!r) {
    co_return r.error();
  }
  co_return check_replies(*r);
}

task<std::vector<deploy_hook>> hooks::list_hooks(std::string_view project) {
  auto r = co_await redis_.exec("HGETALL", keys_.project_hooks(project));
  if (!r) {
    co_return r.error();
  }
  std::vector<deploy_hook> out;
  for (const auto& [id, text] : fields_of(*r)) {
    if (auto h = hook_from_json(project, text)) {
      out.push_back(std::move(h->first));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.created_at, a.id) < std::tie(b.created_at, b.id);
  });
  co_return out;
}

task<bool> hooks::delete_hook(std::string_view project, std::string_view id) {
  auto r = co_await redis_.hget(keys_.project_hooks(project), id);
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return false;
  }
  auto h = hook_from_json(project, **r);
  std::vector<std::vector<std::string>> commands{{"MULTI"}};
  if (h && !h->second.empty()) {
    commands.push_back({"DEL", keys_.hook(h->second)});
  }
  commands.push_back({"HDEL", keys_.project_hooks(project), std::string(id)});
  commands.push_back({"EXEC"});
  auto done = co_await redis_.pipeline(std::move(commands));
  if (!done) {
    co_return done.error();
  }
  if (auto checked = check_replies(*done); !checked) {
    co_return checked.error();
  }
  co_return true;
}

task<deploy_hook> hooks::find_hook(std::string_view secret_sha256) {
  auto r = co_await redis_.exec("HGETALL", keys_.hook(secret_sha256));
  if (!r) {
    co_return r.error();
  }
  auto f = fields_of(*r);
  if (f.empty()) {
    co_return dp::make_error(dp::errc::not_found, "no deploy hook has this URL (it was revoked?)");
  }
  co_return deploy_hook{.id = f["id"], .project = f["project"], .branch = f["branch"]};
}

task<void> hooks::forget_project(std::string_view project) {
  auto r = co_await redis_.exec("HGETALL", keys_.project_hooks(project));
  if (!r) {
    co_return r.error();
  }
  std::vector<std::vector<std::string>> commands{{"MULTI"}};
  for (const auto& [id, text] : fields_of(*r)) {
    if (auto h = hook_from_json(project, text); h && !h->second.empty()) {
      commands.push_back({"DEL", keys_.hook(h->second)});
    }
  }
  commands.push_back({"DEL", keys_.project_hooks(project), keys_.project_webhook(project)});
  commands.push_back({"EXEC"});
  auto done = co_await redis_.pipeline(std::move(commands));
  if (!done) {
    co_return done.error();
  }
  co_return check_replies(*done);
}

}  // namespace dp::state
