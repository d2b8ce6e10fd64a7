// A commit status sent back to the forge: the request each forge documents, as a pure function
// (the caller sends it through dp::http_client).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dp/forge/signature.hpp"

namespace dp::forge {

// canceled: the build was canceled or superseded by a newer push. GitHub's and Gitea's statuses
// have no such state (pending, success, failure, error; Gitea also warning): it is sent as
// `error`, as Jenkins and Travis do for an aborted run, so that the commit does not read as
// broken code ("failure") nor as still running; the description says why. GitLab has
// `canceled`.
enum class commit_state { pending, success, failure, canceled };

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
// pending|success|failure|error; GitLab: POST {api}/projects/{id}/statuses/{sha}, PRIVATE-TOKEN,
// state pending|success|failed|canceled, `name` as the context; Gitea: POST {api}/repos/{owner}/
// {repo}/statuses/{sha}, "token" authorization, state pending|success|failure|error. `context`
// names the check. The description is cut to 140 bytes (GitHub refuses longer ones), at a
// UTF-8 character boundary.
status_request commit_status_request(const status_target& t, std::string_view sha,
                                     commit_state state, std::string_view target_url,
                                     std::string_view description,
                                     std::string_view context = "deploy-platform");

}  // namespace dp::forge
