// deployctl's command line: the verb and its arguments, checked before anything is sent. The
// settings (--api-url, --token, ...) are read by dp::config in main; the flags that belong to one
// verb arrive here as `flags`.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::cli {

enum class verb {
  deploy,
  ls,
  logs,
  promote,
  rollback,
  cancel,
  cache_clear,
  env,
  hooks_ls,
  hooks_create,
  hooks_rm,
  link,
  domains_add,
  domains_ls,
  domains_rm,
  domains_verify,
  domains_primary,
  domains_serve,
  protect,
  forks,
  shadowing
};

struct command {
  verb what = verb::ls;
  // deploy: the git URL or directory; logs, cancel: the deployment id; promote, rollback,
  // cache clear, link, domains: the project; hooks create: the branch; hooks rm: the hook's id.
  std::string target;
  std::string git_url;                 // link
  std::string domain;                  // domains add, rm, verify, primary, serve
  bool target_is_directory = false;    // deploy: a local directory to upload as a tar.gz
  std::string deployment_id;           // promote
  std::optional<std::string> project;  // deploy, ls, hooks (required)
  // deploy (git URLs only): the branch (--branch or --ref); domains add, serve: the branch the
  // domain serves (none: production).
  std::optional<std::string> ref;
  bool follow = false;                // deploy, logs
  bool no_cache = false;              // deploy: build without restoring the build cache
  std::optional<std::string> commit;  // deploy (git URLs only): the exact commit to build
  // env: the project's variables of every target (env), or of one ("production_env",
  // "preview_env", "fork_env" with --target); NAME=VALUE sets, NAME= removes, none lists.
  std::string env_field = "env";
  std::vector<std::pair<std::string, std::optional<std::string>>> env_changes;
  // protect: the scope (off, previews, all; empty shows the setting) and the user whose password
  // is read from stdin (empty: the stored credentials stay).
  std::string protection_scope;
  std::string protection_user;
  // forks: "on", "off" (the project's fork_pull_requests), or empty to show it; shadowing:
  // "files", "rules" (its redirects_shadowing), or empty to show it.
  std::string setting;
};

struct flags {
  std::optional<std::string> project;
  std::optional<std::string> ref;
  std::optional<std::string> branch;  // --branch: the same as --ref, its older name
  std::optional<std::string> target;  // env: production, preview or fork
  std::optional<std::string> commit;  // deploy: --commit SHA
  std::optional<bool> follow;         // unset: deploy follows when stdout is a terminal
  bool no_cache = false;              // --no-cache
};

// `positionals` are the words after the program name that are not settings ("deploy", the URL,
// "-f"). Errors are errc::invalid_argument with a one-line message (exit code 2).
dp::result<command> parse_command(const std::vector<std::string>& positionals, const flags& f,
                                  bool stdout_is_tty);

// "https://...", "http://...", "git@host:path", "ssh://...", "file://...": sent to the API as a
// git URL (the API decides which protocols it allows). Anything else is a local path.
bool looks_like_git_url(std::string_view target) noexcept;

// The commands part of --help.
std::string_view commands_help() noexcept;

}  // namespace dp::cli
