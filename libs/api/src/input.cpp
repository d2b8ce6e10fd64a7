#include "dp/api/input.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "dp/buildplan/git.hpp"
#include "dp/core/hex.hpp"
#include "dp/core/id.hpp"
#include "dp/state/protection.hpp"

namespace dp::api {

namespace json = boost::json;

namespace {

dp::error bad(std::string message) {
  return dp::make_error(dp::errc::invalid_argument, std::move(message));
}

dp::result<json::object> parse_object(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) {
    return bad(fmt::format("the body is not valid JSON: {}", ec.message()));
  }
  if (!v.is_object()) {
    return bad("the body must be a JSON object");
  }
  return std::move(v.as_object());
}

// Refuses fields the endpoint does not know: a typo ("gitUrl") fails loudly instead of being
// ignored.
dp::result<void> only_fields(const json::object& o, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : o) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      return bad(fmt::format("unknown field '{}'", std::string_view(key)));
    }
  }
  return {};
}

// A string field: absent -> nullopt; null -> error unless `nullable` (then "" is not used:
// null comes back as a present-but-empty optional via `was_null`).
struct string_field {
  bool present = false;
  bool is_null = false;
  std::string value;
};

dp::result<string_field> get_string(const json::object& o, std::string_view name, bool nullable) {
  string_field f;
  auto it = o.find(name);
  if (it == o.end()) {
    return f;
  }
  f.present = true;
  if (it->value().is_null() && nullable) {
    f.is_null = true;
    return f;
  }
  if (!it->value().is_string()) {
    return bad(fmt::format("field '{}' must be a string{}", name, nullable ? " or null" : ""));
  }
  f.value = std::string(it->value().as_string());
  return f;
}

dp::result<void> check_git_url(std::string_view url, const std::vector<std::string>& allowed) {
  if (auto r = dp::buildplan::check_git_url(url, allowed); !r) {
    return bad(fmt::format("field 'git_url': {}", r.error().message));
  }
  return {};
}

dp::result<void> check_ref(std::string_view field, std::string_view ref) {
  if (auto r = dp::buildplan::check_git_ref(ref); !r) {
    return bad(fmt::format("field '{}': {}", field, r.error().message));
  }
  return {};
}

dp::result<void> check_dir(std::string_view field, std::string_view dir) {
  if (!proto::is_safe_relative_path(dir) || dir.size() > 1024) {
    return bad(fmt::format("field '{}' must be a relative path inside the repository", field));
  }
  return {};
}

// "" is allowed: it skips the step (null is the detected default).
dp::result<void> check_command(std::string_view field, std::string_view command) {
  if (command.size() > 4096 || command.find('\0') != std::string_view::npos) {
    return bad(
        fmt::format("field '{}' must be a command of at most 4096 characters, without NUL", field));
  }
  return {};
}

// The fields a project shares between POST (create) and PATCH (update).
// {"scope", "username"?, "password"?} or null. The password comes in clear and is kept only as
// its hash; a change of scope alone keeps the stored credentials.
dp::result<void> apply_protection(proto::project& p, const json::value& v) {
  if (v.is_null()) {
    p.protection.reset();
    return {};
  }
  if (!v.is_object()) {
    return bad("field 'protection' must be an object {scope, username, password} or null");
  }
  const auto& o = v.as_object();
  if (auto r = only_fields(o, {"scope", "username", "password"}); !r) {
    return r;
  }
  const json::value* scope_v = o.if_contains("scope");
  auto scope = scope_v && scope_v->is_string() ? proto::parse_protection_scope(scope_v->as_string())
                                               : std::nullopt;
  if (!scope) {
    return bad("field 'protection.scope' must be \"off\", \"previews\" or \"all\"");
  }
  if (*scope == proto::protection_scope::off) {
    p.protection.reset();
    return {};
  }
  proto::protection next = p.protection.value_or(proto::protection{});
  next.scope = *scope;
  if (const json::value* u = o.if_contains("username")) {
    // RFC 7617: the user-id holds no colon; no control characters either (a header value).
    auto name = u->is_string() ? std::string_view(u->as_string()) : std::string_view();
    bool ok =
        !name.empty() && name.size() <= 64 && std::none_of(name.begin(), name.end(), [](char c) {
          return c == ':' || std::iscntrl(static_cast<unsigned char>(c));
        });
    if (!ok) {
      return bad(
          "field 'protection.username' must be 1 to 64 characters without ':' or control "
          "characters");
    }
    next.username = name;
  }
  if (const json::value* pw = o.if_contains("password")) {
    auto clear = pw->is_string() ? std::string_view(pw->as_string()) : std::string_view();
    if (clear.empty() || clear.size() > 256 || std::any_of(clear.begin(), clear.end(), [](char c) {
          return std::iscntrl(static_cast<unsigned char>(c));
        })) {
      return bad(
          "field 'protection.password' must be 1 to 256 characters without control "
          "characters");
    }
    auto hashed = state::hash_password(clear);
    if (!hashed) {
      return hashed.error();
    }
    next.password_hash = std::move(*hashed);
  }
  if (next.username.empty()) {
    return bad("field 'protection.username' is missing (the project has no credentials yet)");
  }
  if (next.password_hash.empty()) {
    return bad("field 'protection.password' is missing (the project has no credentials yet)");
  }
  p.protection = std::move(next);
  return {};
}

dp::result<void> apply_project_fields(proto::project& p, const json::object& o,
                                      const std::vector<std::string>& allowed) {
  auto git_url = get_string(o, "git_url", false);
  if (!git_url) {
    return git_url.error();
  }
  if (git_url->present) {
    if (auto r = check_git_url(git_url->value, allowed); !r) {
      return r;
    }
    p.git_url = git_url->value;
  }
  auto root_dir = get_string(o, "root_dir", false);
  if (!root_dir) {
    return root_dir.error();
  }
  if (root_dir->present) {
    if (!root_dir->value.empty()) {
      if (auto r = check_dir("root_dir", root_dir->value); !r) {
        return r;
      }
    }
    p.root_dir = root_dir->value;
  }
  if (o.contains("branch") && o.contains("production_branch")) {
    return bad("give 'production_branch' or its older name 'branch', not both");
  }
  struct nullable {
    std::string_view name;
    std::optional<std::string>* target;
  };
  for (auto [name, target] :
       {nullable{"production_branch", &p.production_branch},
        nullable{"branch", &p.production_branch}, nullable{"install_command", &p.install_command},
        nullable{"build_command", &p.build_command}, nullable{"output_dir", &p.output_dir}}) {
    auto f = get_string(o, name, true);
    if (!f) {
      return f.error();
    }
    if (!f->present) {
      continue;
    }
    if (f->is_null) {
      target->reset();
      continue;
    }
    dp::result<void> ok;
    if (name == "branch" || name == "production_branch") {
      ok = check_ref(name, f->value);
    } else if (name == "output_dir") {
      ok = check_dir(name, f->value);
    } else {
      ok = check_command(name, f->value);
    }
    if (!ok) {
      return ok;
    }
    *target = f->value;
  }
  if (auto it = o.find("serve_mode"); it != o.end()) {
    const auto& v = it->value();
    auto mode = v.is_string() ? proto::parse_serve_mode(v.as_string()) : std::nullopt;
    if (v.is_null()) {
      p.mode.reset();
    } else if (mode) {
      p.mode = *mode;
    } else {
      return bad("field 'serve_mode' must be \"spa\", \"static\" or null");
    }
  }
  // Retention overrides: null goes back to the platform's RETENTION_* setting.
  struct count_field {
    std::string_view name;
    std::optional<int64_t>* target;
    int64_t min;
  };
  for (auto [name, target, min] :
       {count_field{"keep_deployments", &p.keep_deployments, 1},
        count_field{"keep_production_days", &p.keep_production_days, 0}}) {
    auto it = o.find(name);
    if (it == o.end()) {
      continue;
    }
    const auto& v = it->value();
    if (v.is_null()) {
      target->reset();
    } else if (v.is_int64() && v.as_int64() >= min && v.as_int64() <= 36500) {
      *target = v.as_int64();
    } else {
      return bad(fmt::format("field '{}' must be an integer from {} to 36500, or null", name, min));
    }
  }
  if (auto it = o.find("protection"); it != o.end()) {
    if (auto r = apply_protection(p, it->value()); !r) {
      return r;
    }
  }
  if (auto it = o.find("install_scripts"); it != o.end()) {
    if (!it->value().is_bool()) {
      return bad("field 'install_scripts' must be true or false");
    }
    p.install_scripts = it->value().as_bool();
  }
  if (auto it = o.find("redirects_shadowing"); it != o.end()) {
    const auto& v = it->value();
    auto shadowing = v.is_string() ? proto::parse_redirects_shadowing(v.as_string()) : std::nullopt;
    if (!shadowing) {
      return bad(
          "field 'redirects_shadowing' must be \"files\" (a file shadows a _redirects rule "
          "without '!') or \"rules\" (every rule applies over files)");
    }
    p.shadowing = *shadowing;
  }
  if (auto it = o.find("cancel_superseded"); it != o.end()) {
    if (!it->value().is_bool()) {
      return bad("field 'cancel_superseded' must be true or false");
    }
    p.cancel_superseded = it->value().as_bool();
  }
  if (auto it = o.find("fork_pull_requests"); it != o.end()) {
    if (!it->value().is_bool()) {
      return bad("field 'fork_pull_requests' must be true or false");
    }
    p.fork_pull_requests = it->value().as_bool();
  }
  struct env_field {
    std::string_view name;
    proto::env_map* target;
  };
  for (auto [name, target] :
       {env_field{"env", &p.env}, env_field{"production_env", &p.production_env},
        env_field{"preview_env", &p.preview_env}, env_field{"fork_env", &p.fork_env}}) {
    auto it = o.find(name);
    if (it == o.end()) {
      continue;
    }
    if (!it->value().is_object()) {
      return bad(fmt::format("field '{}' must be an object of strings", name));
    }
    proto::env_map env;
    for (const auto& [key, value] : it->value().as_object()) {
      if (!proto::is_env_name(key)) {
        return bad(fmt::format("field '{}': '{}' is not a valid variable name", name,
                               std::string_view(key)));
      }
      if (!value.is_string()) {
        return bad(fmt::format("field '{}.{}' must be a string", name, std::string_view(key)));
      }
      env.emplace(std::string(key), std::string(value.as_string()));
    }
    *target = std::move(env);
  }
  return {};
}

}  // namespace

dp::result<void> check_project_name(std::string_view field, std::string_view name) {
  // 54, not 63: the immutable alias "<name>--<8 character short id>" must be a DNS label too.
  if (!proto::is_stored_project_name(name)) {
    return bad(fmt::format(
        "{} must be a DNS label: 1 to 54 of [a-z0-9-], not starting or ending with '-'", field));
  }
  return {};
}

dp::result<void> check_new_project_name(std::string_view field, std::string_view name) {
  if (auto r = check_project_name(field, name); !r) {
    return r;
  }
  if (!proto::is_project_name(name)) {
    return bad(fmt::format(
        "{} must not contain '--' (nor be 'xn'): '--' separates a project from a deployment in "
        "deployment URLs (<project>--<id>)",
        field));
  }
  return {};
}

dp::result<proto::project> parse_new_project(std::string_view body,
                                             const std::vector<std::string>& allowed) {
  auto o = parse_object(body);
  if (!o) {
    return o.error();
  }
  if (auto r = only_fields(*o, {"name",
                                "git_url",
                                "branch",
                                "production_branch",
                                "root_dir",
                                "install_command",
                                "build_command",
                                "output_dir",
                                "serve_mode",
                                "install_scripts",
                                "redirects_shadowing",
                                "env",
                                "production_env",
                                "preview_env",
                                "cancel_superseded",
                                "fork_pull_requests",
                                "fork_env",
                                "keep_deployments",
                                "keep_production_days",
                                "protection"});
      !r) {
    return r.error();
  }
  auto name = get_string(*o, "name", false);
  if (!name) {
    return name.error();
  }
  if (!name->present) {
    return bad("field 'name' is missing");
  }
  if (auto r = check_new_project_name("field 'name'", name->value); !r) {
    return r.error();
  }
  if (!o->contains("git_url")) {
    return bad("field 'git_url' is missing");
  }
  proto::project p;
  p.name = name->value;
  if (auto r = apply_project_fields(p, *o, allowed); !r) {
    return r.error();
  }
  return p;
}

dp::result<void> apply_project_patch(proto::project& p, std::string_view body,
                                     const std::vector<std::string>& allowed) {
  auto o = parse_object(body);
  if (!o) {
    return o.error();
  }
  if (auto r =
          only_fields(*o, {"git_url", "branch", "production_branch", "root_dir", "install_command",
                           "build_command", "output_dir", "serve_mode", "install_scripts",
                           "redirects_shadowing", "env", "production_env", "preview_env",
                           "cancel_superseded", "fork_pull_requests", "fork_env",
                           "keep_deployments", "keep_production_days", "protection"});
      !r) {
    return r;
  }
  // Validate into a copy: a refused patch leaves the project as it was.
  proto::project next = p;
  if (auto r = apply_project_fields(next, *o, allowed); !r) {
    return r;
  }
  p = std::move(next);
  return {};
}

std::optional<proto::deployment_trigger> parse_request_trigger(std::string_view s) {
  auto t = proto::parse_deployment_trigger(s);
  if (t && (*t == proto::deployment_trigger::hook || *t == proto::deployment_trigger::webhook)) {
    return std::nullopt;
  }
  return t;
}

dp::result<deploy_request> parse_deploy_request(std::string_view body,
                                                const std::vector<std::string>& allowed,
                                                std::optional<std::string> path_project) {
  deploy_request req;
  // An empty body is a deploy of the production branch (POST /v1/projects/{name}/deployments).
  auto o =
      path_project && body.empty() ? dp::result<json::object>(json::object()) : parse_object(body);
  if (!o) {
    return o.error();
  }
  if (path_project) {
    if (auto r = only_fields(*o, {"branch", "ref", "commit", "trigger", "no_cache"}); !r) {
      return r.error();
    }
  } else if (auto r = only_fields(
                 *o, {"project", "git_url", "branch", "ref", "commit", "trigger", "no_cache"});
             !r) {
    return r.error();
  }
  if (auto it = o->find("no_cache"); it != o->end()) {
    if (!it->value().is_bool()) {
      return bad("field 'no_cache' must be true or false");
    }
    req.no_cache = it->value().get_bool();
  }
  auto project = get_string(*o, "project", false);
  auto git_url = get_string(*o, "git_url", false);
  auto ref = get_string(*o, "ref", true);
  auto branch = get_string(*o, "branch", true);
  auto commit = get_string(*o, "commit", true);
  auto trigger = get_string(*o, "trigger", false);
  for (auto* f : {&project, &git_url, &ref, &branch, &commit, &trigger}) {
    if (!*f) {
      return f->error();
    }
  }
  req.project = path_project;
  if (project->present) {
    if (auto r = check_project_name("field 'project'", project->value); !r) {
      return r.error();
    }
    req.project = project->value;
  }
  if (git_url->present) {
    if (auto r = check_git_url(git_url->value, allowed); !r) {
      return r.error();
    }
    req.git_url = git_url->value;
  }
  if (!req.project && !req.git_url) {
    return bad("give 'project' (an existing project) or 'git_url' (with 'project' to name it)");
  }
  bool has_ref = ref->present && !ref->is_null;
  bool has_branch = branch->present && !branch->is_null;
  if (has_ref && has_branch) {
    return bad("give 'branch' or its older name 'ref', not both");
  }
  if (has_ref || has_branch) {
    auto name = has_branch ? "branch" : "ref";
    auto value = has_branch ? branch->value : ref->value;
    if (auto r = check_ref(name, value); !r) {
      return r.error();
    }
    req.branch = value;
  }
  if (commit->present && !commit->is_null) {
    const auto& c = commit->value;
    if (!dp::is_commit_sha(c)) {
      return bad("field 'commit' must be a commit sha: 40 or 64 lowercase hex digits");
    }
    req.commit = c;
  }
  if (trigger->present) {
    auto t = parse_request_trigger(trigger->value);
    if (!t) {
      return bad("field 'trigger' must be \"api\", \"cli\" or \"dashboard\"");
    }
    req.trigger = *t;
  }
  return req;
}

dp::result<deploy_request> parse_legacy_deploy_request(std::string_view body,
                                                       const std::vector<std::string>& allowed) {
  auto o = parse_object(body);
  if (!o) {
    return o.error();
  }
  if (auto r = only_fields(*o, {"gitURL", "slug"}); !r) {
    return r.error();
  }
  auto git_url = get_string(*o, "gitURL", false);
  auto slug = get_string(*o, "slug", true);
  for (auto* f : {&git_url, &slug}) {
    if (!*f) {
      return f->error();
    }
  }
  if (!git_url->present) {
    return bad("field 'gitURL' is missing");
  }
  if (auto r = dp::buildplan::check_git_url(git_url->value, allowed); !r) {
    return bad(fmt::format("field 'gitURL': {}", r.error().message));
  }
  deploy_request req;
  req.git_url = git_url->value;
  if (slug->present && !slug->is_null) {
    if (auto r = check_project_name("field 'slug'", slug->value); !r) {
      return r.error();
    }
    req.project = slug->value;
  }
  return req;
}

dp::result<std::string> parse_promote_request(std::string_view body) {
  auto o = parse_object(body);
  if (!o) {
    return o.error();
  }
  if (auto r = only_fields(*o, {"deployment_id"}); !r) {
    return r.error();
  }
  auto id = get_string(*o, "deployment_id", false);
  if (!id) {
    return id.error();
  }
  if (!id->present) {
    return bad("field 'deployment_id' is missing");
  }
  if (!dp::is_deployment_id(id->value)) {
    return bad("field 'deployment_id' must be a deployment id (26 lowercase base32 characters)");
  }
  return id->value;
}

std::optional<std::string> project_name_from_git_url(std::string_view url) {
  while (!url.empty() && url.back() == '/') {
    url.remove_suffix(1);
  }
  auto slash = url.find_last_of('/');
  auto last = slash == std::string_view::npos ? url : url.substr(slash + 1);
  if (last.ends_with(".git")) {
    last.remove_suffix(4);
  }
  std::string name;
  for (char c : last) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (ok) {
      name.push_back(c);
    } else if (!name.empty() && name.back() != '-') {
      name.push_back('-');
    }
  }
  while (!name.empty() && name.back() == '-') {
    name.pop_back();
  }
  // Leaves room for "-<short id>" in the immutable alias label.
  if (name.size() > proto::max_project_name) {
    name.resize(proto::max_project_name);
    while (!name.empty() && name.back() == '-') {
      name.pop_back();
    }
  }
  if (!proto::is_project_name(name)) {
    return std::nullopt;
  }
  return name;
}

dp::result<int64_t> parse_count(const std::optional<std::string>& value, std::string_view name,
                                int64_t def, int64_t max) {
  if (!value) {
    return def;
  }
  int64_t n = 0;
  auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
  if (ec != std::errc() || end != value->data() + value->size() || n < 0 || n > max) {
    return bad(fmt::format("query parameter '{}' must be an integer from 0 to {}", name, max));
  }
  return n;
}

dp::result<std::string> parse_hook_request(std::string_view body) {
  auto o = parse_object(body);
  if (!o) {
    return o.error();
  }
  if (auto r = only_fields(*o, {"branch"}); !r) {
    return r.error();
  }
  auto branch = get_string(*o, "branch", false);
  if (!branch) {
    return branch.error();
  }
  if (!branch->present || branch->value.empty()) {
    return bad("field 'branch' is required");
  }
  if (auto r = dp::buildplan::check_git_ref(branch->value); !r) {
    return bad(fmt::format("field 'branch': {}", r.error().message));
  }
  return branch->value;
}

dp::result<forge_request> parse_forge_request(std::string_view body) {
  auto o = parse_object(body);
  if (!o) {
    return o.error();
  }
  if (auto r = only_fields(*o, {"forge", "api_url", "repository", "token"}); !r) {
    return r.error();
  }
  forge_request out;
  for (auto [name, field] :
       {std::pair{"forge", &out.forge}, std::pair{"api_url", &out.api_url},
        std::pair{"repository", &out.repository}, std::pair{"token", &out.token}}) {
    auto f = get_string(*o, name, false);
    if (!f) {
      return f.error();
    }
    if (!f->present || f->value.empty()) {
      return bad(fmt::format("field '{}' is required", name));
    }
    *field = f->value;
  }
  if (out.forge != "github" && out.forge != "gitlab" && out.forge != "gitea") {
    return bad("field 'forge' must be \"github\", \"gitlab\" or \"gitea\"");
  }
  if (!out.api_url.starts_with("https://") && !out.api_url.starts_with("http://")) {
    return bad("field 'api_url' must be an http(s) URL (https://api.github.com)");
  }
  return out;
}

dp::result<std::string> check_domain_name(std::string_view name, std::string_view base_domain) {
  std::string fqdn;
  for (char c : name) {
    fqdn += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (fqdn.ends_with('.')) {
    fqdn.pop_back();
  }
  auto bad = [&](std::string_view why) {
    return make_error(errc::invalid_argument,
                      "field 'domain' " + std::string(why) + ": '" + std::string(name) + "'");
  };
  if (fqdn.empty() || fqdn.size() > 253) {
    return bad("must be a domain name of 1 to 253 characters");
  }
  size_t labels = 0;
  size_t start = 0;
  std::string_view last;
  for (;;) {
    size_t dot = fqdn.find('.', start);
    std::string_view label = std::string_view(fqdn).substr(
        start, dot == std::string::npos ? std::string::npos : dot - start);
    bool ok = !label.empty() && label.size() <= 63 && label.front() != '-' && label.back() != '-' &&
              std::all_of(label.begin(), label.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
              });
    if (!ok) {
      return bad("must be a domain name (letters, digits and hyphens between dots)");
    }
    ++labels;
    last = label;
    if (dot == std::string::npos) {
      break;
    }
    start = dot + 1;
  }
  if (labels < 2 ||
      std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return bad("must be a domain name with a top-level domain (not an IP address)");
  }
  if (fqdn == base_domain || fqdn.ends_with("." + std::string(base_domain))) {
    return bad("is the platform's own domain; its subdomains are served already");
  }
  return fqdn;
}

}  // namespace dp::api
