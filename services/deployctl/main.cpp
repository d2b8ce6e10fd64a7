// deployctl: the users' command line for the API (deploy, ls, logs, promote, rollback, cancel).
// Wiring only; the logic lives in libs/cli.
#include <unistd.h>

#include <cstdio>
#include <functional>

#include "dp/cli/args.hpp"
#include "dp/cli/run.hpp"
#include "dp/core/config.hpp"

extern char** environ;

namespace {

// A flag-only setting whose empty value means "not given".
dp::config::setting optional_flag(std::string flag, std::optional<std::string>* target,
                                  std::string help) {
  return {.flag = std::move(flag),
          .help = std::move(help),
          .apply = [target](std::string_view v) -> std::optional<std::string> {
            if (!v.empty()) {
              *target = std::string(v);
            }
            return std::nullopt;
          }};
}

// A switch (--name, --name=false) whose value is given to `set` only when it appears.
dp::config::setting switch_flag(std::string flag, std::string help, std::function<void(bool)> set) {
  return {.flag = std::move(flag),
          .help = std::move(help),
          .is_switch = true,
          .apply = [set = std::move(set)](std::string_view v) -> std::optional<std::string> {
            if (v.empty()) {
              return std::nullopt;
            }
            bool b = false;
            if (auto err = dp::config::parse_bool(v, b)) {
              return err;
            }
            set(b);
            return std::nullopt;
          }};
}

}  // namespace

int main(int argc, char** argv) {
  dp::cli::options opts;
  dp::cli::flags flags;
  std::string usage =
      "<command> [arguments] [settings]\n\n" + std::string(dp::cli::commands_help());
  dp::config::parser parser("deployctl", "deploy static sites and follow their builds", usage);
  parser.add({.env = "DEPLOYCTL_API_URL",
              .flag = "--api-url",
              .default_value = opts.api_url,
              .help = "Base URL of the api-server",
              .apply = [&](std::string_view v) -> std::optional<std::string> {
                if (!v.starts_with("http://") && !v.starts_with("https://")) {
                  return "must start with http:// or https://";
                }
                opts.api_url = std::string(v);
                return std::nullopt;
              }});
  parser.add({.env = "DEPLOYCTL_TOKEN",
              .flag = "--token",
              .help = "Bearer token of the API (one of its API_TOKENS); unset in local mode",
              .secret = true,
              .apply = [&](std::string_view v) -> std::optional<std::string> {
                opts.token = std::string(v);
                return std::nullopt;
              }});
  parser.add(optional_flag("--project", &flags.project,
                           "deploy, ls: the project (deploy: default from the URL or directory)"));
  parser.add(optional_flag("--branch", &flags.branch,
                           "deploy: the branch of a git URL to build (production for the "
                           "project's production branch, else a preview); domains add, serve: "
                           "the branch the domain serves"));
  parser.add(optional_flag("--ref", &flags.ref, "deploy: the older name of --branch"));
  parser.add(optional_flag("--target", &flags.target,
                           "env: production or preview (the overrides of that target's builds), "
                           "or fork (the whole environment of forks' pull request builds)"));
  parser.add(optional_flag("--commit", &flags.commit,
                           "deploy: the exact commit to build (a full sha on the branch)"));
  parser.add(
      switch_flag("--follow",
                  "deploy, logs: stream the logs to the end (--follow=false: do not); deploy "
                  "follows by default when stdout is a terminal",
                  [&](bool b) { flags.follow = b; }));
  parser.add(switch_flag("--no-cache", "deploy: build without restoring the project's build cache",
                         [&](bool b) { flags.no_cache = b; }));
  auto outcome = parser.parse(argc, argv, dp::config::environment_from(environ));
  if (!outcome.run) {
    return outcome.exit_code;
  }
  bool tty = ::isatty(STDOUT_FILENO) == 1;
  auto cmd = dp::cli::parse_command(parser.positionals(), flags, tty);
  if (!cmd) {
    std::fprintf(stderr, "deployctl: %s\n", cmd.error().message.c_str());
    return dp::cli::exit_bad_input;
  }
  // https://no-color.org: any non-empty NO_COLOR turns colors off.
  const char* no_color = std::getenv("NO_COLOR");
  opts.color = tty && (no_color == nullptr || *no_color == '\0');
  return dp::cli::run(*cmd, opts, stdout, stderr);
}
