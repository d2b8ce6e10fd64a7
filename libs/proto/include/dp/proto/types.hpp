// C++ types of the messages and records that cross a process boundary (see proto/README.md and
// proto/schemas). Plain aggregates: conversions live in json.hpp and hash.hpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dp::proto {

// The only message version this code reads and writes.
inline constexpr int64_t version = 1;

enum class deployment_status {
  queued,
  cloning,
  installing,
  building,
  uploading,
  ready,
  failed,
  canceled
};

std::string_view to_string(deployment_status s) noexcept;
std::optional<deployment_status> parse_deployment_status(std::string_view s) noexcept;

// ready, failed and canceled are final: a deployment never leaves them.
constexpr bool is_final(deployment_status s) noexcept {
  return s == deployment_status::ready || s == deployment_status::failed ||
         s == deployment_status::canceled;
}

// Final states are never left; a non-final state may fail or be canceled at any time and
// otherwise only moves forward (steps may be skipped, e.g. no install command).
constexpr bool can_transition(deployment_status from, deployment_status to) noexcept {
  if (is_final(from)) {
    return false;
  }
  if (to == deployment_status::failed || to == deployment_status::canceled) {
    return true;
  }
  return static_cast<int>(to) > static_cast<int>(from);
}

// A DNS label: [a-z0-9-]{1,63}, not starting or ending with '-'. Alias labels.
bool is_dns_label(std::string_view s) noexcept;
// Project names are DNS labels of at most 54 characters without "--": the immutable alias
// "<name>--<8 characters of the id>" (dp::immutable_alias) must be a DNS label too, and no
// project name may ever equal one (they share alias:<label>). "--" also keeps out IDNA's
// "xn--" labels, and "xn" itself is refused ("xn--<short id>" would be one). The rule for a new
// name.
inline constexpr size_t max_project_name = 54;
bool is_project_name(std::string_view s) noexcept;
// A name a stored project may have: a new one, or one made before "--" was refused. For looking
// projects up and for reading records, so that such projects stay usable.
bool is_stored_project_name(std::string_view s) noexcept;

// Environment variable names as a shell accepts them: [A-Za-z_][A-Za-z0-9_]*.
bool is_env_name(std::string_view s) noexcept;

// Sorted, so serialized records are deterministic.
using env_map = std::map<std::string, std::string>;

// spa: an unknown extension-less path serves index.html; static_files ("static"): 404.html.
enum class serve_mode { spa, static_files };

std::string_view to_string(serve_mode m) noexcept;
std::optional<serve_mode> parse_serve_mode(std::string_view s) noexcept;

// Whether a file that exists for a request path shadows a `_redirects` rule without `!`
// ("files": Netlify's rule, the default: `/* /index.html 200` leaves the assets alone) or every
// rule applies regardless of files ("rules": Cloudflare Pages').
enum class redirects_shadowing { files, rules };

std::string_view to_string(redirects_shadowing s) noexcept;
std::optional<redirects_shadowing> parse_redirects_shadowing(std::string_view s) noexcept;

// Where a deployment goes live: production (the project's alias) or a preview (its branch and
// pull-request aliases, never production).
enum class deployment_target { production, preview };

std::string_view to_string(deployment_target t) noexcept;
std::optional<deployment_target> parse_deployment_target(std::string_view s) noexcept;

// What started a deployment: a request to the API, deployctl, the dashboard, a deploy hook
// (POST /v1/hooks/<secret>) or a forge's webhook.
enum class deployment_trigger { api, cli, dashboard, hook, webhook };

std::string_view to_string(deployment_trigger t) noexcept;
std::optional<deployment_trigger> parse_deployment_trigger(std::string_view s) noexcept;

struct job {
  std::string deployment_id;
  std::string project;
  std::string git_url;             // "" when the source is an uploaded archive
  std::optional<std::string> ref;  // null: the remote's default branch; "refs/...": that ref
  // The commit to check out (40 or 64 hex digits); null: the ref's head.
  std::optional<std::string> commit;
  std::string root_dir;  // "" is the repository root
  std::optional<std::string> install_command;
  std::optional<std::string> build_command;
  std::optional<std::string> output_dir;
  env_map env;
  int64_t attempt = 1;
  int64_t timeout_s = 0;
  int64_t enqueued_at = 0;  // Unix ms
  // Storage key of an uploaded tar.gz (__sources/<id>.tar.gz) built instead of a clone.
  std::optional<std::string> source_archive;
  std::optional<serve_mode> mode;  // "serve_mode"; null: static when the output has a 404.html
  bool install_scripts = true;     // false: a detected install runs with --ignore-scripts
  // The build neither restores nor reads the project's build cache (it still writes one).
  bool no_cache = false;
  // A fork's pull request: the build cache is neither read nor written (the fork's install could
  // leave in node_modules what the project's own builds would restore).
  bool fork = false;
  // The project's production branch: a ref without a cache starts from its.
  std::optional<std::string> production_branch;
  // Where the build goes live (its env is that target's, proto::build_env).
  deployment_target target = deployment_target::production;
  redirects_shadowing shadowing = redirects_shadowing::files;  // "redirects_shadowing"
  bool operator==(const job&) const = default;
};

// stdout/stderr of the build, or system: lines the platform writes itself.
enum class log_stream { out, err, system };

std::string_view to_string(log_stream s) noexcept;
std::optional<log_stream> parse_log_stream(std::string_view s) noexcept;

// The step of the build a log line belongs to, in the order a build runs them (some may be
// skipped). A phase starts with its first line; events written before phases existed have none.
enum class log_phase { clone, restore_cache, install, build, upload, save_cache, go_live };

std::string_view to_string(log_phase p) noexcept;
std::optional<log_phase> parse_log_phase(std::string_view s) noexcept;

struct log_event {
  std::string deployment_id;
  int64_t seq = 0;  // dense and increasing per deployment
  int64_t ts_ms = 0;
  log_stream stream = log_stream::out;
  std::string line;
  std::optional<log_phase> phase;
  bool operator==(const log_event&) const = default;
};

// Who may see a project's sites without HTTP Basic credentials: nobody is asked (off), previews
// (every alias but production's and its custom domains) or every host (all).
enum class protection_scope { off, previews, all };

std::string_view to_string(protection_scope s) noexcept;
std::optional<protection_scope> parse_protection_scope(std::string_view s) noexcept;

// A project's Basic-auth protection as stored: the password only as its salted hash
// (dp::state::hash_password); the API shows "password_set" instead.
struct protection {
  protection_scope scope = protection_scope::off;
  std::string username;
  std::string password_hash;
  bool operator==(const protection&) const = default;
};

struct project {
  std::string name;
  std::string git_url;  // "" for a project made by a directory upload
  // The branch whose pushes go to production; null: the repository's default branch, learned
  // from a forge's payload or from the first build of the default branch ("main" until then).
  // Read from the field "branch" too (its name before previews).
  std::optional<std::string> production_branch;
  std::string root_dir;
  std::optional<std::string> install_command;
  std::optional<std::string> build_command;
  std::optional<std::string> output_dir;
  std::optional<serve_mode> mode;  // "serve_mode"; null: static when the output has a 404.html
  bool install_scripts = true;     // false: a detected install runs no lifecycle script
  redirects_shadowing shadowing = redirects_shadowing::files;  // "redirects_shadowing"
  env_map env;                                                 // every target's
  env_map production_env;  // overrides `env` in production builds
  env_map preview_env;     // overrides `env` in preview builds
  // Pull requests from forks are built (from the base repository's pull request ref) only when
  // this is on: their code is not the project's, so they get `fork_env` alone, never `env`,
  // `production_env` or `preview_env`.
  bool fork_pull_requests = false;
  env_map fork_env;  // what fork builds may see (public values only)
  // A newer deployment of a branch cancels that branch's running build too (its queued ones are
  // always canceled).
  bool cancel_superseded = true;
  int64_t created_at = 0;
  // Retention overrides (null: the platform's RETENTION_* settings): keep the newest
  // keep_deployments ready deployments, and every one in production within keep_production_days.
  std::optional<int64_t> keep_deployments;
  std::optional<int64_t> keep_production_days;
  std::optional<proto::protection> protection;  // null: off
  bool operator==(const project&) const = default;
};

// The environment a build of `target` gets: the project's env, then that target's overrides.
// A fork's pull request (`fork`): p.fork_env alone.
env_map build_env(const project& p, deployment_target target, bool fork = false);

// One setting as a build applied it: its value ("" skips the step) and whether the project set
// it ("source": "project") or the build detected it ("detected").
struct build_setting {
  std::string value;
  bool from_project = false;
  bool operator==(const build_setting&) const = default;
};

// What a build decided before it ran anything (buildplan), stored on its deployment.
struct build_settings {
  std::string framework;        // slug; "" when none was detected
  std::string package_manager;  // npm, pnpm, yarn; "" without package.json
  build_setting install_command;
  build_setting build_command;
  std::optional<build_setting> output_dir;  // relative to root_dir ("." itself); known after build
  bool operator==(const build_settings&) const = default;
};

struct deployment {
  std::string id;
  std::string project;
  deployment_status status = deployment_status::queued;
  std::string git_url;  // "" for a deployment of an uploaded archive
  std::optional<std::string> ref;
  std::optional<std::string> commit;
  std::optional<std::string> alias;  // the immutable label <project>-<short id>
  // The branch built (null: the remote's default, or an uploaded archive), the commit's message
  // and author as the trigger reported them, and the pull request it previews.
  std::optional<std::string> branch;
  std::optional<std::string> commit_message;
  std::optional<std::string> commit_author;
  std::optional<int64_t> pull_request;
  // A fork's pull request: built from the pull request's ref with the project's fork_env only,
  // served at the pull request's alias only (its branch is the fork's, not the project's).
  bool fork = false;
  deployment_target target = deployment_target::production;
  std::optional<deployment_trigger> trigger;  // null for deployments made before the field
  int64_t created_at = 0;
  std::optional<int64_t> started_at;
  std::optional<int64_t> finished_at;
  std::optional<std::string> error;
  int64_t attempt = 1;
  std::optional<int64_t> files;
  std::optional<int64_t> bytes;
  std::optional<int64_t> source_bytes;  // the uploaded archive's size (__sources/<id>.tar.gz)
  // When the production alias last moved away from this deployment (Unix ms); null: it never
  // left production (or never was, or it was before this field existed).
  std::optional<int64_t> production_until;
  // When the retention policy removed its files (Unix ms): the record stays, the site is gone.
  std::optional<int64_t> pruned_at;
  std::optional<build_settings> settings;  // "build_settings"; set once the build has planned
  // The build cache: "hit" (node_modules restored, no install), "partial" (the package store or
  // framework folders restored), "miss", "off" (--no-cache, set when the deployment is created,
  // or no cache configured).
  std::optional<std::string> cache;
  std::optional<int64_t> cache_bytes;  // the project's cache after the build
  bool operator==(const deployment&) const = default;
};

struct manifest_entry {
  int64_t size = 0;
  std::string sha256;  // 64 lowercase hex digits
  std::string content_type;
  std::string cache_control;
  bool operator==(const manifest_entry&) const = default;
};

// __outputs/<deployment_id>/.deployment.json, written last: the commit marker.
struct manifest {
  std::string deployment_id;
  int64_t created_at = 0;
  serve_mode mode = serve_mode::spa;
  std::map<std::string, manifest_entry> files;  // relative path -> entry
  // The site's compiled hosting rules (dp::siteconfig's JSON form) beside the manifest, by name
  // (proto::rules_name); null: the deployment has none.
  std::optional<std::string> rules;
  bool operator==(const manifest&) const = default;
};

// True for a relative path with no empty, "." or ".." segment, no backslash and no NUL.
bool is_safe_relative_path(std::string_view path) noexcept;

// Published on events:deployments after each status change ("type":"status").
struct status_event {
  std::string deployment_id;
  std::string project;
  deployment_status status = deployment_status::queued;
  int64_t ts_ms = 0;
  std::optional<std::string> error;
  bool operator==(const status_event&) const = default;
};

// Published on events:deployments after alias:<alias> changed ("type":"alias").
struct alias_event {
  std::string alias;
  std::string deployment_id;
  std::string project;
  int64_t ts_ms = 0;
  bool operator==(const alias_event&) const = default;
};

// Published on events:routes after something a proxy caches per host changed without moving an
// alias to a deployment: a project's protection, a project or deployment deleted (the aliases it
// removed), a custom domain added, verified, changed or removed. A proxy drops what it cached
// for the project, for each alias and for each domain (and its apex/www twin).
struct route_event {
  std::string project;
  std::vector<std::string> aliases;  // alias labels removed or changed
  std::vector<std::string> domains;  // custom domains (fqdn) whose route or policy changed
  int64_t ts_ms = 0;
  bool operator==(const route_event&) const = default;
};

// SET on key cancel:<id> (with a TTL) and PUBLISHed on channel cancel:<id>.
struct cancel_request {
  std::string deployment_id;
  int64_t requested_at = 0;
  std::optional<std::string> reason;
  bool operator==(const cancel_request&) const = default;
};

}  // namespace dp::proto
