// git for untrusted input: which URLs and refs are accepted, how credentials are kept out of
// logs, and the exact clone command (no hooks, no system or user config, allowed protocols only).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dp/core/config.hpp"
#include "dp/core/error.hpp"

namespace dp::buildplan {

// Accepts `url` when its scheme is one of `allowed_protocols` ("https", "http", "file"; ssh and
// git's transport helpers such as ext:: and fd:: are never accepted). Refuses scp-like
// addresses (git@host:repo), local paths, leading '-', whitespace and control characters.
// Returns the lowercase scheme.
result<std::string> check_git_url(std::string_view url,
                                  const std::vector<std::string>& allowed_protocols);

// Refuses refs git would not accept or could mistake for an option: a leading '-', "..",
// "@{", control characters, space, ~ ^ : ? * [ \, a trailing '/', '.' or ".lock", and so on.
result<void> check_git_ref(std::string_view ref);

// https://user:token@host/x -> https://***@host/x. Anything else is returned as it is.
std::string redact_url(std::string_view url);
// Redacts the credentials of every URL found in a line of text (git echoes URLs in errors).
std::string redact_text(std::string_view text);

struct clone_request {
  std::string url;  // checked with check_git_url
  std::string ref;  // branch or tag; empty: the remote's default branch (a full "refs/..." ref
                    // is not cloned but fetched: git_init_argv, git_fetch_argv)
  std::string dir;  // the new repository's directory; must not exist or be empty
  std::vector<std::string> allowed_protocols;
};

// git -c core.hooksPath=/dev/null -c protocol.allow=never -c protocol.<p>.allow=always ...
//     clone --depth 1 --single-branch --no-tags [--branch <ref>] -- <url> <dir>
std::vector<std::string> git_clone_argv(const clone_request& req);
// git init -q -- <dir>: an empty repository to fetch one ref into (a pull request's ref, which
// clone --branch does not take).
std::vector<std::string> git_init_argv(const std::string& dir);

struct fetch_request {
  std::string url;            // checked with check_git_url
  std::string what;           // a full ref ("refs/heads/main", "refs/pull/7/head") or a commit sha
  std::string dir;            // an existing repository
  int depth = 1;              // commits of history; 0: --shallow-since instead
  int64_t shallow_since = 0;  // Unix seconds, with depth 0
  std::vector<std::string> allowed_protocols;
};
// git <the clone's -c options> -C <dir> fetch --no-tags (--depth <n> | --shallow-since=@<t>)
//     -- <url> <what>: FETCH_HEAD is then the ref's head (or the commit).
std::vector<std::string> git_fetch_argv(const fetch_request& req);
// git -C <dir> checkout -q --detach <commit> --
std::vector<std::string> git_checkout_argv(const std::string& dir, const std::string& commit);
// git -C <dir> merge-base --is-ancestor <commit> FETCH_HEAD: exit 0 when the commit is in the
// fetched ref's (fetched) history.
std::vector<std::string> git_is_ancestor_argv(const std::string& dir, const std::string& commit);
// git -C <dir> show -s --format=%ct <commit>: its committer date, Unix seconds.
std::vector<std::string> git_commit_time_argv(const std::string& dir, const std::string& commit);

// git -C <dir> rev-parse HEAD: prints the commit that was checked out.
std::vector<std::string> git_head_argv(const std::string& dir);
// git -C <dir> symbolic-ref --short -q HEAD: the branch checked out (a clone without a ref: the
// remote's default branch).
std::vector<std::string> git_branch_argv(const std::string& dir);
// The environment for git: no prompts, no system or global config, HOME where we say.
config::environment git_env(const std::string& home);

}  // namespace dp::buildplan
