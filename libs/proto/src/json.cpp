#include "dp/proto/json.hpp"

#include "dp/core/id.hpp"
#include "dp/core/json_escape.hpp"

#include <boost/json.hpp>

#include <charconv>
#include <limits>

namespace dp::proto {
namespace json = boost::json;

namespace {

// ---- writing ----

void put(json::object& o, std::string_view key, const std::optional<std::string>& s) {
  if (s) {
    o.emplace(key, *s);
  } else {
    o.emplace(key, nullptr);
  }
}

void put(json::object& o, std::string_view key, const std::optional<serve_mode>& m) {
  if (m) {
    o.emplace(key, to_string(*m));
  } else {
    o.emplace(key, nullptr);
  }
}

void put(json::object& o, std::string_view key, const std::optional<int64_t>& n) {
  if (n) {
    o.emplace(key, *n);
  } else {
    o.emplace(key, nullptr);
  }
}

void put(json::object& o, std::string_view key, const env_map& env) {
  json::object& e = o.emplace(key, json::object(o.storage())).first->value().get_object();
  for (const auto& [name, value] : env) {
    e.emplace(name, value);
  }
}

// ---- reading ----

// Reads the fields of one JSON object, keeping the first error. Callers read every field, then
// look at error(): this keeps each parser a flat list of fields, as the schema is.
class reader {
 public:
  // `path` is the dotted path of this object ("" for the message itself).
  reader(const json::value& v, std::string path) : path_(std::move(path)) {
    if (v.is_object()) {
      obj_ = &v.get_object();
    } else if (path_.empty()) {
      error_ = make_error(errc::invalid_argument, "message must be a JSON object");
    } else {
      error_ = make_error(errc::invalid_argument, "field '{}' must be an object", path_);
    }
  }

  const std::optional<dp::error>& error() const noexcept { return error_; }

  void fail(std::string_view key, std::string_view what) {
    if (!error_) {
      error_ = make_error(errc::invalid_argument, "field '{}' {}", field_path(key), what);
    }
  }

  std::string field_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
  }

  // The member, or null when absent (then a required member records an error).
  const json::value* get(std::string_view key, bool required) {
    if (error_) {
      return nullptr;
    }
    const json::value* p = obj_->if_contains(key);
    if (p == nullptr && required) {
      fail(key, "is missing");
    }
    return p;
  }

  // Messages carry "v"; a reader refuses a version it does not know rather than misread it.
  void version(bool required = true) {
    const json::value* p = get("v", required);
    if (p != nullptr && !(p->is_int64() && p->get_int64() == proto::version)) {
      fail("v",
           fmt::format("must be {} (unknown version {})", proto::version, json::serialize(*p)));
    }
  }

  // A discriminator such as "type":"status".
  void constant(std::string_view key, std::string_view expected) {
    const json::value* p = get(key, true);
    if (p != nullptr && !(p->is_string() && p->get_string() == expected)) {
      fail(key, fmt::format("must be \"{}\"", expected));
    }
  }

  void string(std::string_view key, std::string& out) {
    if (const json::value* p = get(key, true)) {
      if (p->is_string()) {
        out = p->get_string();
      } else {
        fail(key, "must be a string");
      }
    }
  }

  // Absent and null both mean "not set".
  void string(std::string_view key, std::optional<std::string>& out) {
    out.reset();
    if (const json::value* p = get(key, false); p != nullptr && !p->is_null()) {
      if (p->is_string()) {
        out.emplace(p->get_string());
      } else {
        fail(key, "must be a string or null");
      }
    }
  }

  // Absent means false.
  void boolean(std::string_view key, bool& out) {
    out = false;
    if (const json::value* p = get(key, false); p != nullptr) {
      if (p->is_bool()) {
        out = p->get_bool();
      } else {
        fail(key, "must be true or false");
      }
    }
  }

  void non_empty(std::string_view key, std::string& out) {
    string(key, out);
    if (!error_ && out.empty()) {
      fail(key, "must not be empty");
    }
  }

  void project_name(std::string_view key, std::string& out) {
    string(key, out);
    if (!error_ && !is_stored_project_name(out)) {
      fail(key, "must be a project name: 1 to 54 of [a-z0-9-], not starting or ending with '-'");
    }
  }

  void deployment_id(std::string_view key, std::string& out) {
    string(key, out);
    if (!error_ && !is_deployment_id(out)) {
      fail(key, "must be a deployment id (26 lowercase base32 characters)");
    }
  }

  void integer(std::string_view key, int64_t& out, int64_t min = 0) {
    if (const json::value* p = get(key, true)) {
      read_integer(key, *p, out, min);
    }
  }

  void integer(std::string_view key, std::optional<int64_t>& out, int64_t min = 0) {
    out.reset();
    if (const json::value* p = get(key, false); p != nullptr && !p->is_null()) {
      read_integer(key, *p, out.emplace(), min);
    }
  }

  template <class E>
  void enumeration(std::string_view key, E& out, std::optional<E> (*parse)(std::string_view),
                   std::string_view allowed) {
    if (const json::value* p = get(key, true)) {
      std::optional<E> e = p->is_string() ? parse(p->get_string()) : std::nullopt;
      if (e) {
        out = *e;
      } else {
        fail(key, fmt::format("must be one of {}", allowed));
      }
    }
  }

  // Absent and null both mean "not set".
  template <class E>
  void enumeration(std::string_view key, std::optional<E>& out,
                   std::optional<E> (*parse)(std::string_view), std::string_view allowed) {
    out.reset();
    if (const json::value* p = get(key, false); p != nullptr && !p->is_null()) {
      out = p->is_string() ? parse(p->get_string()) : std::nullopt;
      if (!out) {
        fail(key, fmt::format("must be one of {}, or null", allowed));
      }
    }
  }

  // Absent means `absent`.
  void boolean(std::string_view key, bool& out, bool absent) {
    out = absent;
    if (const json::value* p = get(key, false)) {
      if (p->is_bool()) {
        out = p->get_bool();
      } else {
        fail(key, "must be true or false");
      }
    }
  }

  // {"value": "...", "source": "project" | "detected"}
  void setting(std::string_view key, build_setting& out) {
    const json::value* p = get(key, true);
    if (p == nullptr) {
      return;
    }
    reader s(*p, field_path(key));
    s.string("value", out.value);
    std::string source;
    s.string("source", source);
    if (!s.error_ && source != "project" && source != "detected") {
      s.fail("source", "must be one of project, detected");
    }
    out.from_project = source == "project";
    take(s);
  }

  void env(std::string_view key, env_map& out, bool required = true) {
    out.clear();
    const json::value* p = get(key, required);
    if (p == nullptr) {
      return;
    }
    if (!p->is_object()) {
      return fail(key, "must be an object");
    }
    for (const auto& m : p->get_object()) {
      std::string name = fmt::format("{}.{}", key, std::string_view(m.key()));
      if (!is_env_name(m.key())) {
        return fail(name, "is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
      }
      if (!m.value().is_string()) {
        return fail(name, "must be a string");
      }
      out.emplace(m.key(), m.value().get_string());
    }
  }

  // {"scope", "username", "password_hash"}; absent and null both mean off.
  void protection(std::string_view key, std::optional<proto::protection>& out) {
    out.reset();
    const json::value* p = get(key, false);
    if (p == nullptr || p->is_null()) {
      return;
    }
    reader s(*p, field_path(key));
    auto& x = out.emplace();
    s.enumeration("scope", x.scope, &parse_protection_scope, "off, previews, all");
    s.non_empty("username", x.username);
    s.non_empty("password_hash", x.password_hash);
    take(s);
  }

  // Hands a nested reader's error up to this one.
  void take(const reader& nested) {
    if (!error_ && nested.error_) {
      error_ = nested.error_;
    }
  }

 private:
  void read_integer(std::string_view key, const json::value& v, int64_t& out, int64_t min) {
    // Integers only: 1.0 is refused so that no writer comes to depend on floats being accepted.
    if (v.is_int64() && v.get_int64() >= min) {
      out = v.get_int64();
    } else {
      fail(key, fmt::format("must be an integer from {} to {}", min,
                            std::numeric_limits<int64_t>::max()));
    }
  }

  const json::object* obj_ = nullptr;
  std::string path_;
  std::optional<dp::error> error_;
};

template <class T>
dp::result<T> finish(const reader& r, T&& out) {
  if (r.error()) {
    return *r.error();
  }
  return std::move(out);
}

template <class T>
dp::result<T> parse_text(std::string_view text, dp::result<T> (*parse)(const json::value&)) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) {
    return make_error(errc::invalid_argument, "invalid JSON: {}", ec.message());
  }
  return parse(v);
}

constexpr std::string_view status_names =
    "queued, cloning, installing, building, uploading, "
    "ready, failed, canceled";

template <class T>
std::string serialize(const T& x) {
  return json::serialize(json::value_from(x));
}

// Absent (records and jobs made before the field): files.
void shadowing(reader& r, redirects_shadowing& out) {
  if (r.get("redirects_shadowing", false) != nullptr) {
    r.enumeration("redirects_shadowing", out, &parse_redirects_shadowing, "files, rules");
  }
}

}  // namespace

// ---- job ----

void tag_invoke(const json::value_from_tag&, json::value& v, const job& x) {
  json::object& o = v.emplace_object();
  o.emplace("v", version);
  o.emplace("deployment_id", x.deployment_id);
  o.emplace("project", x.project);
  o.emplace("git_url", x.git_url);
  put(o, "ref", x.ref);
  if (x.commit) {
    o.emplace("commit", *x.commit);
  }
  o.emplace("root_dir", x.root_dir);
  put(o, "install_command", x.install_command);
  put(o, "build_command", x.build_command);
  put(o, "output_dir", x.output_dir);
  put(o, "env", x.env);
  o.emplace("attempt", x.attempt);
  o.emplace("timeout_s", x.timeout_s);
  o.emplace("enqueued_at", x.enqueued_at);
  // Written only when set, so that readers older than the field see the jobs they know.
  if (x.source_archive) {
    o.emplace("source_archive", *x.source_archive);
  }
  if (x.mode) {
    o.emplace("serve_mode", to_string(*x.mode));
  }
  if (!x.install_scripts) {
    o.emplace("install_scripts", false);
  }
  if (x.no_cache) {
    o.emplace("no_cache", true);
  }
  if (x.fork) {
    o.emplace("fork", true);
  }
  if (x.production_branch) {
    o.emplace("production_branch", *x.production_branch);
  }
  if (x.target != deployment_target::production) {
    o.emplace("target", to_string(x.target));
  }
  if (x.shadowing != redirects_shadowing::files) {
    o.emplace("redirects_shadowing", to_string(x.shadowing));
  }
}

dp::result<job> parse_job(const json::value& v) {
  reader r(v, "");
  job x;
  r.version();
  r.deployment_id("deployment_id", x.deployment_id);
  r.project_name("project", x.project);
  r.string("source_archive", x.source_archive);
  if (x.source_archive) {
    r.string("git_url", x.git_url);
  } else {
    r.non_empty("git_url", x.git_url);
  }
  r.string("ref", x.ref);
  r.string("commit", x.commit);
  r.string("root_dir", x.root_dir);
  r.string("install_command", x.install_command);
  r.string("build_command", x.build_command);
  r.string("output_dir", x.output_dir);
  r.enumeration("serve_mode", x.mode, &parse_serve_mode, "spa, static");
  r.boolean("install_scripts", x.install_scripts, true);
  r.env("env", x.env);
  r.integer("attempt", x.attempt, 1);
  r.integer("timeout_s", x.timeout_s, 1);
  r.integer("enqueued_at", x.enqueued_at);
  r.boolean("no_cache", x.no_cache);
  r.boolean("fork", x.fork);
  r.string("production_branch", x.production_branch);
  if (r.get("target", false) != nullptr) {
    r.enumeration("target", x.target, &parse_deployment_target, "production, preview");
  }
  shadowing(r, x.shadowing);
  return finish(r, std::move(x));
}

// ---- log_event ----

void tag_invoke(const json::value_from_tag&, json::value& v, const log_event& x) {
  // Sanitized like append_json, so both give the same JSON for any bytes a build prints.
  json::object& o = v.emplace_object();
  o.emplace("deployment_id", sanitize_utf8(x.deployment_id));
  o.emplace("seq", x.seq);
  o.emplace("ts_ms", x.ts_ms);
  o.emplace("stream", to_string(x.stream));
  o.emplace("line", sanitize_utf8(x.line));
  if (x.phase) {
    o.emplace("phase", to_string(*x.phase));
  }
}

void append_json(std::string& out, const log_event& x) {
  char num[24];
  auto append_int = [&](int64_t n) {
    auto [end, ec] = std::to_chars(num, num + sizeof num, n);
    out.append(num, end);
  };
  out += R"({"deployment_id":)";
  append_json_string(out, x.deployment_id);
  out += R"(,"seq":)";
  append_int(x.seq);
  out += R"(,"ts_ms":)";
  append_int(x.ts_ms);
  out += R"(,"stream":")";
  out += to_string(x.stream);
  out += R"(","line":)";
  append_json_string(out, x.line);
  if (x.phase) {
    out += R"(,"phase":")";
    out += to_string(*x.phase);
    out += '"';
  }
  out += '}';
}

dp::result<log_event> parse_log_event(const json::value& v) {
  reader r(v, "");
  log_event x;
  r.version(false);  // no "v" in version 1 (the hot path); a later version adds one
  r.deployment_id("deployment_id", x.deployment_id);
  r.integer("seq", x.seq);
  r.integer("ts_ms", x.ts_ms);
  r.enumeration("stream", x.stream, &parse_log_stream, "stdout, stderr, system");
  r.string("line", x.line);
  r.enumeration("phase", x.phase, &parse_log_phase,
                "clone, restore_cache, install, build, upload, save_cache, go_live");
  return finish(r, std::move(x));
}

// ---- project ----

void tag_invoke(const json::value_from_tag&, json::value& v, const project& x) {
  json::object& o = v.emplace_object();
  o.emplace("name", x.name);
  o.emplace("git_url", x.git_url);
  put(o, "production_branch", x.production_branch);
  o.emplace("root_dir", x.root_dir);
  put(o, "install_command", x.install_command);
  put(o, "build_command", x.build_command);
  put(o, "output_dir", x.output_dir);
  put(o, "serve_mode", x.mode);
  o.emplace("install_scripts", x.install_scripts);
  o.emplace("redirects_shadowing", to_string(x.shadowing));
  put(o, "env", x.env);
  put(o, "production_env", x.production_env);
  put(o, "preview_env", x.preview_env);
  o.emplace("cancel_superseded", x.cancel_superseded);
  o.emplace("fork_pull_requests", x.fork_pull_requests);
  put(o, "fork_env", x.fork_env);
  o.emplace("created_at", x.created_at);
  put(o, "keep_deployments", x.keep_deployments);
  put(o, "keep_production_days", x.keep_production_days);
  if (x.protection) {
    o.emplace("protection", json::object{{"scope", to_string(x.protection->scope)},
                                         {"username", x.protection->username},
                                         {"password_hash", x.protection->password_hash}});
  } else {
    o.emplace("protection", nullptr);
  }
}

dp::result<project> parse_project(const json::value& v) {
  reader r(v, "");
  project x;
  r.project_name("name", x.name);
  r.string("git_url", x.git_url);
  r.string("production_branch", x.production_branch);
  if (!x.production_branch) {
    r.string("branch", x.production_branch);
  }
  r.string("root_dir", x.root_dir);
  r.string("install_command", x.install_command);
  r.string("build_command", x.build_command);
  r.string("output_dir", x.output_dir);
  r.enumeration("serve_mode", x.mode, &parse_serve_mode, "spa, static");
  r.boolean("install_scripts", x.install_scripts, true);
  shadowing(r, x.shadowing);
  r.env("env", x.env);
  r.env("production_env", x.production_env, false);
  r.env("preview_env", x.preview_env, false);
  r.boolean("cancel_superseded", x.cancel_superseded, true);
  r.boolean("fork_pull_requests", x.fork_pull_requests);
  r.env("fork_env", x.fork_env, false);
  r.integer("created_at", x.created_at);
  r.integer("keep_deployments", x.keep_deployments, 1);
  r.integer("keep_production_days", x.keep_production_days);
  r.protection("protection", x.protection);
  return finish(r, std::move(x));
}

// ---- deployment ----

void tag_invoke(const json::value_from_tag&, json::value& v, const deployment& x) {
  json::object& o = v.emplace_object();
  o.emplace("id", x.id);
  o.emplace("project", x.project);
  o.emplace("status", to_string(x.status));
  o.emplace("git_url", x.git_url);
  put(o, "ref", x.ref);
  put(o, "commit", x.commit);
  put(o, "alias", x.alias);
  put(o, "branch", x.branch);
  put(o, "commit_message", x.commit_message);
  put(o, "commit_author", x.commit_author);
  put(o, "pull_request", x.pull_request);
  // Written only when set: records before the field read the same.
  if (x.fork) {
    o.emplace("fork", true);
  }
  o.emplace("target", to_string(x.target));
  if (x.trigger) {
    o.emplace("trigger", to_string(*x.trigger));
  } else {
    o.emplace("trigger", nullptr);
  }
  o.emplace("created_at", x.created_at);
  put(o, "started_at", x.started_at);
  put(o, "finished_at", x.finished_at);
  put(o, "error", x.error);
  o.emplace("attempt", x.attempt);
  put(o, "files", x.files);
  put(o, "bytes", x.bytes);
  put(o, "source_bytes", x.source_bytes);
  put(o, "production_until", x.production_until);
  put(o, "pruned_at", x.pruned_at);
  if (x.settings) {
    o.emplace("build_settings", json::value_from(*x.settings, o.storage()));
  } else {
    o.emplace("build_settings", nullptr);
  }
  put(o, "cache", x.cache);
  put(o, "cache_bytes", x.cache_bytes);
}

dp::result<deployment> parse_deployment(const json::value& v) {
  reader r(v, "");
  deployment x;
  r.deployment_id("id", x.id);
  r.project_name("project", x.project);
  r.enumeration("status", x.status, &parse_deployment_status, status_names);
  r.string("git_url", x.git_url);
  r.string("ref", x.ref);
  r.string("commit", x.commit);
  r.string("alias", x.alias);
  if (x.alias && !is_dns_label(*x.alias)) {
    r.fail("alias", "must be a DNS label or null");
  }
  r.string("branch", x.branch);
  r.string("commit_message", x.commit_message);
  r.string("commit_author", x.commit_author);
  r.integer("pull_request", x.pull_request, 1);
  r.boolean("fork", x.fork);
  // Absent in deployments made before previews: those all went to production.
  if (r.get("target", false) != nullptr) {
    r.enumeration("target", x.target, &parse_deployment_target, "production, preview");
  }
  r.enumeration("trigger", x.trigger, &parse_deployment_trigger,
                "api, cli, dashboard, hook, webhook");
  r.integer("created_at", x.created_at);
  r.integer("started_at", x.started_at);
  r.integer("finished_at", x.finished_at);
  r.string("error", x.error);
  r.integer("attempt", x.attempt, 1);
  r.integer("files", x.files);
  r.integer("bytes", x.bytes);
  r.integer("source_bytes", x.source_bytes);
  r.integer("production_until", x.production_until);
  r.integer("pruned_at", x.pruned_at);
  if (const json::value* p = r.get("build_settings", false); p != nullptr && !p->is_null()) {
    reader s(*p, "build_settings");
    auto& out = x.settings.emplace();
    s.string("framework", out.framework);
    s.string("package_manager", out.package_manager);
    s.setting("install_command", out.install_command);
    s.setting("build_command", out.build_command);
    if (const json::value* o = s.get("output_dir", false); o != nullptr && !o->is_null()) {
      s.setting("output_dir", out.output_dir.emplace());
    }
    r.take(s);
  }
  r.string("cache", x.cache);
  r.integer("cache_bytes", x.cache_bytes);
  return finish(r, std::move(x));
}

void tag_invoke(const json::value_from_tag&, json::value& v, const build_settings& x) {
  json::object& o = v.emplace_object();
  auto setting = [&](std::string_view key, const build_setting& s) {
    o.emplace(
        key, json::object{{"value", s.value}, {"source", s.from_project ? "project" : "detected"}});
  };
  o.emplace("framework", x.framework);
  o.emplace("package_manager", x.package_manager);
  setting("install_command", x.install_command);
  setting("build_command", x.build_command);
  if (x.output_dir) {
    setting("output_dir", *x.output_dir);
  } else {
    o.emplace("output_dir", nullptr);
  }
}

// ---- manifest ----

void tag_invoke(const json::value_from_tag&, json::value& v, const manifest_entry& x) {
  json::object& o = v.emplace_object();
  o.emplace("size", x.size);
  o.emplace("sha256", x.sha256);
  o.emplace("content_type", x.content_type);
  o.emplace("cache_control", x.cache_control);
}

void tag_invoke(const json::value_from_tag&, json::value& v, const manifest& x) {
  json::object& o = v.emplace_object();
  o.emplace("v", version);
  o.emplace("deployment_id", x.deployment_id);
  o.emplace("created_at", x.created_at);
  o.emplace("mode", to_string(x.mode));
  json::object& files = o.emplace("files", json::object(o.storage())).first->value().get_object();
  files.reserve(x.files.size());
  for (const auto& [path, entry] : x.files) {
    files.emplace(path, json::value_from(entry, o.storage()));
  }
  // Written only when set, so that a proxy older than the field reads the manifest.
  if (x.rules) {
    o.emplace("rules", *x.rules);
  }
}

namespace {

bool is_sha256_hex(std::string_view s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

dp::result<manifest> parse_manifest(const json::value& v) {
  reader r(v, "");
  manifest x;
  r.version();
  r.deployment_id("deployment_id", x.deployment_id);
  r.integer("created_at", x.created_at);
  r.enumeration("mode", x.mode, &parse_serve_mode, "spa, static");
  const json::value* files = r.get("files", true);
  if (files != nullptr && !files->is_object()) {
    r.fail("files", "must be an object");
  } else if (files != nullptr) {
    for (const auto& m : files->get_object()) {
      std::string path = fmt::format("files.{}", std::string_view(m.key()));
      // The proxy joins these paths onto the deployment's prefix: refuse anything but a plain
      // relative path.
      if (!is_safe_relative_path(m.key())) {
        r.fail(path, "is not a safe relative path");
        break;
      }
      reader e(m.value(), path);
      manifest_entry entry;
      e.integer("size", entry.size);
      e.string("sha256", entry.sha256);
      if (!e.error() && !is_sha256_hex(entry.sha256)) {
        e.fail("sha256", "must be 64 lowercase hex digits");
      }
      e.non_empty("content_type", entry.content_type);
      e.string("cache_control", entry.cache_control);
      r.take(e);
      if (r.error()) {
        break;
      }
      x.files.emplace(m.key(), std::move(entry));
    }
  }
  r.string("rules", x.rules);
  if (x.rules && !is_safe_relative_path(*x.rules)) {
    r.fail("rules", "is not a safe relative path");
  }
  return finish(r, std::move(x));
}

// ---- events ----

void tag_invoke(const json::value_from_tag&, json::value& v, const status_event& x) {
  json::object& o = v.emplace_object();
  o.emplace("v", version);
  o.emplace("type", "status");
  o.emplace("deployment_id", x.deployment_id);
  o.emplace("project", x.project);
  o.emplace("status", to_string(x.status));
  o.emplace("ts_ms", x.ts_ms);
  put(o, "error", x.error);
}

dp::result<status_event> parse_status_event(const json::value& v) {
  reader r(v, "");
  status_event x;
  r.version();
  r.constant("type", "status");
  r.deployment_id("deployment_id", x.deployment_id);
  r.project_name("project", x.project);
  r.enumeration("status", x.status, &parse_deployment_status, status_names);
  r.integer("ts_ms", x.ts_ms);
  r.string("error", x.error);
  return finish(r, std::move(x));
}

void tag_invoke(const json::value_from_tag&, json::value& v, const alias_event& x) {
  json::object& o = v.emplace_object();
  o.emplace("v", version);
  o.emplace("type", "alias");
  o.emplace("alias", x.alias);
  o.emplace("deployment_id", x.deployment_id);
  o.emplace("project", x.project);
  o.emplace("ts_ms", x.ts_ms);
}

dp::result<alias_event> parse_alias_event(const json::value& v) {
  reader r(v, "");
  alias_event x;
  r.version();
  r.constant("type", "alias");
  r.project_name("alias", x.alias);
  r.deployment_id("deployment_id", x.deployment_id);
  r.project_name("project", x.project);
  r.integer("ts_ms", x.ts_ms);
  return finish(r, std::move(x));
}

dp::result<deployment_event> parse_deployment_event(const json::value& v) {
  reader r(v, "");
  r.version();
  std::string type;
  r.string("type", type);
  if (!r.error() && type == "status") {
    auto e = parse_status_event(v);
    return e ? dp::result<deployment_event>(std::move(*e)) : e.error();
  }
  if (!r.error() && type == "alias") {
    auto e = parse_alias_event(v);
    return e ? dp::result<deployment_event>(std::move(*e)) : e.error();
  }
  r.fail("type", "must be one of status, alias");
  return *r.error();
}

// ---- route ----

void tag_invoke(const json::value_from_tag&, json::value& v, const route_event& x) {
  json::object& o = v.emplace_object();
  o.emplace("v", version);
  o.emplace("project", x.project);
  o.emplace("aliases", json::array(x.aliases.begin(), x.aliases.end()));
  o.emplace("domains", json::array(x.domains.begin(), x.domains.end()));
  o.emplace("ts_ms", x.ts_ms);
}

dp::result<route_event> parse_route_event(const json::value& v) {
  reader r(v, "");
  route_event x;
  r.version();
  r.project_name("project", x.project);
  auto names = [&](std::string_view key, std::vector<std::string>& out, bool labels) {
    const json::value* p = r.get(key, true);
    if (p == nullptr) {
      return;
    }
    if (!p->is_array()) {
      r.fail(key, "must be an array of strings");
      return;
    }
    for (const auto& item : p->get_array()) {
      if (!item.is_string() || item.get_string().empty() ||
          (labels && !is_dns_label(item.get_string()))) {
        r.fail(key, labels ? "must hold DNS labels" : "must hold domain names");
        return;
      }
      out.emplace_back(item.get_string());
    }
  };
  names("aliases", x.aliases, true);
  names("domains", x.domains, false);
  r.integer("ts_ms", x.ts_ms);
  return finish(r, std::move(x));
}

// ---- cancel ----

void tag_invoke(const json::value_from_tag&, json::value& v, const cancel_request& x) {
  json::object& o = v.emplace_object();
  o.emplace("v", version);
  o.emplace("deployment_id", x.deployment_id);
  o.emplace("requested_at", x.requested_at);
  put(o, "reason", x.reason);
}

dp::result<cancel_request> parse_cancel_request(const json::value& v) {
  reader r(v, "");
  cancel_request x;
  r.version();
  r.deployment_id("deployment_id", x.deployment_id);
  r.integer("requested_at", x.requested_at);
  r.string("reason", x.reason);
  return finish(r, std::move(x));
}

// ---- text ----

std::string to_json(const job& x) {
  return serialize(x);
}
std::string to_json(const log_event& x) {
  std::string out;
  out.reserve(96 + x.line.size());
  append_json(out, x);
  return out;
}
std::string to_json(const project& x) {
  return serialize(x);
}
std::string to_json(const deployment& x) {
  return serialize(x);
}
std::string to_json(const manifest& x) {
  return serialize(x);
}
std::string to_json(const status_event& x) {
  return serialize(x);
}
std::string to_json(const alias_event& x) {
  return serialize(x);
}
std::string to_json(const route_event& x) {
  return serialize(x);
}
std::string to_json(const cancel_request& x) {
  return serialize(x);
}

dp::result<job> parse_job(std::string_view text) {
  return parse_text(text, &parse_job);
}
dp::result<log_event> parse_log_event(std::string_view text) {
  return parse_text(text, &parse_log_event);
}
dp::result<project> parse_project(std::string_view text) {
  return parse_text(text, &parse_project);
}
dp::result<deployment> parse_deployment(std::string_view text) {
  return parse_text(text, &parse_deployment);
}
dp::result<manifest> parse_manifest(std::string_view text) {
  return parse_text(text, &parse_manifest);
}
dp::result<status_event> parse_status_event(std::string_view text) {
  return parse_text(text, &parse_status_event);
}
dp::result<alias_event> parse_alias_event(std::string_view text) {
  return parse_text(text, &parse_alias_event);
}
dp::result<deployment_event> parse_deployment_event(std::string_view text) {
  return parse_text(text, &parse_deployment_event);
}
dp::result<route_event> parse_route_event(std::string_view text) {
  return parse_text(text, &parse_route_event);
}
dp::result<cancel_request> parse_cancel_request(std::string_view text) {
  return parse_text(text, &parse_cancel_request);
}

}  // namespace dp::proto
