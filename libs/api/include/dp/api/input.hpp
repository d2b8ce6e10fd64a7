// Strict parsing of request bodies: malformed JSON, a wrong type, an unknown field or a value the
// platform refuses (a name that is not a DNS label, a git URL with a protocol that is not allowed)
// is errc::invalid_argument with a message naming the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"
#include "dp/proto/types.hpp"

namespace dp::api {

// A name that may name a project (proto::is_stored_project_name): for looking one up.
// `what` names the value in the error ("field 'name'", "project name").
dp::result<void> check_project_name(std::string_view what, std::string_view name);
// A custom domain as given (case and a trailing dot ignored): DNS syntax, a top-level domain,
// and not the platform's base domain or under it. Returns the lowercase fqdn.
dp::result<std::string> check_domain_name(std::string_view name, std::string_view base_domain);
// A name a new project may take (proto::is_project_name: no "--").
dp::result<void> check_new_project_name(std::string_view what, std::string_view name);

// POST /v1/projects: {name, git_url, production_branch? (or its older name branch), root_dir?,
// install_command?, build_command?, output_dir?, serve_mode?, install_scripts?, env?,
// production_env?, preview_env?, cancel_superseded?, keep_deployments?, keep_production_days?,
// protection? ({scope, username, password} with the password hashed here, or null)}.
// created_at is left 0 for the caller.
dp::result<proto::project> parse_new_project(std::string_view body,
                                             const std::vector<std::string>& allowed_protocols);

// PATCH /v1/projects/{name}: any of the fields above but name; null clears a nullable field.
dp::result<void> apply_project_patch(proto::project& p, std::string_view body,
                                     const std::vector<std::string>& allowed_protocols);

struct deploy_request {
  std::optional<std::string> project;
  std::optional<std::string> git_url;
  // The branch to build ("ref", its older name, is the same); null: the production branch.
  std::optional<std::string> branch;
  std::optional<std::string> commit;  // 40 or 64 hex digits: recorded, the build records its own
  proto::deployment_trigger trigger = proto::deployment_trigger::api;
  bool no_cache = false;  // build without restoring the project's build cache
};

// POST /v1/deployments: {project?, git_url?, branch? (or ref?), commit?, trigger?, no_cache?};
// at least one of project and git_url. With `path_project` (POST
// /v1/projects/{name}/deployments) the body has neither. `trigger`: api, cli or dashboard (the
// others are the server's own).
dp::result<deploy_request> parse_deploy_request(
    std::string_view body, const std::vector<std::string>& allowed_protocols,
    std::optional<std::string> path_project = std::nullopt);

// A trigger a request may name: api, cli or dashboard.
std::optional<proto::deployment_trigger> parse_request_trigger(std::string_view s);

// The original design's POST /project: {"gitURL", "slug"?}.
dp::result<deploy_request> parse_legacy_deploy_request(
    std::string_view body, const std::vector<std::string>& allowed_protocols);

// POST /v1/projects/{name}/promote: {deployment_id}.
dp::result<std::string> parse_promote_request(std::string_view body);

// A project name from a repository URL ("https://x/acme/My_Shop.git" -> "my-shop"), or nullopt.
std::optional<std::string> project_name_from_git_url(std::string_view url);

// POST /v1/projects/{name}/hooks: {branch} (a valid git branch name).
dp::result<std::string> parse_hook_request(std::string_view body);

struct forge_request {
  std::string forge;       // github, gitlab, gitea
  std::string api_url;     // http(s)://...: where the forge's REST API answers
  std::string repository;  // owner/name (GitLab: the project's id or path)
  std::string token;
};

// PUT /v1/projects/{name}/forge: {forge, api_url, repository, token}, every field required.
dp::result<forge_request> parse_forge_request(std::string_view body);

// A non-negative integer query parameter no larger than `max` (absent: `def`).
dp::result<int64_t> parse_count(const std::optional<std::string>& value, std::string_view name,
                                int64_t def, int64_t max);

}  // namespace dp::api
