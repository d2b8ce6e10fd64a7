// A commit status sent back to the forge: the request each forge documents, as a pure function
// (the caller sends it through dp::http_client).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dp/forge/signature.hpp"

namespace dp::forge {

enum class commit_state { pending, success, failure };

struct status_target {
  provider forge = provider::github;
  // https://api.github.com, https://gitlab.example.com/api/v4, https://gitea.example.com/api/v1
  std::string api_url;
  // "owner/name"; GitLab: the project's numeric id or its path ("group/project").
  std::string repository;
  std::string token;
};

struct status_request {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // JSON
};

// GitHub: POST {api}/repos/{owner}/{repo}/statuses/{sha}, Bearer token, state
// pending|success|failure; GitLab: POST {api}/projects/{id}/statuses/{sha}, PRIVATE-TOKEN, state
// pending|success|failed, `name` as the context; Gitea: POST {api}/repos/{owner}/{repo}/statuses/
// {sha}, "token" authorization, state pending|success|failure. `context` names the check.
status_request commit_status_request(const status_target& t, std::string_view sha,
                                     commit_state state, std::string_view target_url,
                                     std::string_view description,
                                     std::string_view context = "deploy-platform");

}  // namespace dp::forge
