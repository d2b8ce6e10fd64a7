// The events of GitHub, GitLab and Gitea/Forgejo webhooks that start or end a deployment, parsed
// into one normalized event. Pure functions; call them only after verify() accepted the body.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dp/core/error.hpp"
#include "dp/forge/signature.hpp"

namespace dp::forge {

enum class event_kind {
  ping,                  // the forge checks the endpoint (GitHub's ping)
  push,                  // a branch created or updated: deploy `commit` of `branch`
  branch_deleted,        // a branch deleted: its preview alias goes
  pull_request_updated,  // opened, synchronized (new commits), reopened: preview of `commit`
  pull_request_closed,   // closed or merged: the pull request's alias goes
  ignored,               // anything else (tags, labels, comments...): `ignored_because` says why
};

std::string_view to_string(event_kind k);

struct event {
  event_kind kind = event_kind::ignored;
  std::string branch;          // push, branch_deleted; a pull request's head (source) branch
  std::string commit;          // the sha to deploy (push, pull_request_updated)
  std::string commit_message;  // the head commit's message; a pull request's title
  std::string commit_author;   // its author's name (or the pull request's author)
  std::optional<int64_t> pull_request;  // the number (GitLab: the merge request's iid)
  // A pull request from another repository (a fork): its head branch is not in this one, and
  // its code is not the project's. GitHub, Gitea: pull_request.head.repo is null or another
  // repository than pull_request.base.repo (Gitea: or head.repo_id != base.repo_id); GitLab:
  // source_project_id != target_project_id.
  bool fork = false;
  // The base repository's copy of a pull request's head: refs/pull/<n>/head (GitHub, Gitea),
  // refs/merge-requests/<iid>/head (GitLab).
  std::string pull_ref;
  std::string repository;      // "owner/name" (GitLab: the project's path)
  std::string default_branch;  // the repository's, when the payload says
  std::string ignored_because;
};

// `event_name` is the value of the forge's event header (X-GitHub-Event, X-Gitlab-Event,
// X-Gitea-Event). A body that is not the JSON the event promises is errc::invalid_argument.
dp::result<event> parse_event(provider p, std::string_view event_name, std::string_view body);

}  // namespace dp::forge
