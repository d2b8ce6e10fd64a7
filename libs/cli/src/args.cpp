#include "dp/cli/args.hpp"

#include <filesystem>
#include <system_error>

#include "dp/core/hex.hpp"

namespace dp::cli {

namespace {

dp::error bad(std::string message) {
  return dp::make_error(dp::errc::invalid_argument, std::move(message));
}

// The words of one verb, "-f" taken out as a follow switch (dp::config only knows "--" flags).
struct words {
  std::vector<std::string> args;
  bool dash_f = false;
};

dp::result<words> split(const std::vector<std::string>& positionals) {
  words w;
  for (size_t i = 1; i < positionals.size(); ++i) {
    const auto& p = positionals[i];
    if (p == "-f") {
      w.dash_f = true;
    } else if (p.size() > 1 && p[0] == '-') {
      return bad("unknown option '" + p + "' (see --help)");
    } else {
      w.args.push_back(p);
    }
  }
  return w;
}

dp::result<void> expect_args(std::string_view verb, const words& w, size_t n,
                             std::string_view usage) {
  if (w.args.size() != n) {
    return bad(
        fmt::format("{} takes {} argument{}: deployctl {}", verb, n, n == 1 ? "" : "s", usage));
  }
  return {};
}

}  // namespace

bool looks_like_git_url(std::string_view t) noexcept {
  return t.find("://") != std::string_view::npos || t.starts_with("git@");
}

dp::result<command> parse_command(const std::vector<std::string>& positionals, const flags& f,
                                  bool stdout_is_tty) {
  if (positionals.empty()) {
    return bad(
        "a command is required: deploy, ls, logs, promote, rollback, cancel, cache, env, hooks, "
        "link, domains, protect, forks or shadowing (see --help)");
  }
  auto w = split(positionals);
  if (!w) {
    return w.error();
  }
  const std::string& name = positionals[0];
  command c;
  if (f.branch && f.ref) {
    return bad("give --branch or its older name --ref, not both");
  }
  const auto& branch = f.branch ? f.branch : f.ref;
  const char* branch_flag = f.branch ? "--branch" : "--ref";
  // Flags that do not apply to a verb are refused rather than silently ignored.
  auto only = [&](bool project, bool ref, bool follow) -> dp::result<void> {
    if ((f.project && !project) || (branch && !ref) || ((f.follow || w->dash_f) && !follow)) {
      return bad(fmt::format("{} does not take {}", name,
                             f.project && !project ? "--project"
                             : branch && !ref      ? branch_flag
                                                   : "--follow"));
    }
    return {};
  };
  if (f.no_cache && name != "deploy") {
    return bad(fmt::format("{} does not take --no-cache", name));
  }
  if (f.target && name != "env") {
    return bad(fmt::format("{} does not take --target", name));
  }
  if (f.commit && name != "deploy") {
    return bad(fmt::format("{} does not take --commit", name));
  }
  if (f.commit && !dp::is_commit_sha(*f.commit)) {
    return bad("--commit must be a full commit sha: 40 or 64 lowercase hex digits");
  }
  dp::result<void> ok;
  if (name == "deploy") {
    c.what = verb::deploy;
    ok =
        expect_args(name, *w, 1, "deploy <git-url | directory> [--project NAME] [--branch BRANCH]");
    if (ok) {
      ok = only(true, true, true);
    }
    if (ok) {
      c.target = w->args[0];
      if (!looks_like_git_url(c.target)) {
        std::error_code ec;
        if (!std::filesystem::is_directory(c.target, ec)) {
          return bad(fmt::format("'{}' is neither a git URL nor a directory", c.target));
        }
        if (branch || f.commit) {
          return bad(fmt::format("{} applies to a git URL, not to a directory",
                                 branch ? branch_flag : "--commit"));
        }
        c.target_is_directory = true;
      }
      c.follow = f.follow.value_or(w->dash_f || stdout_is_tty);
      c.no_cache = f.no_cache;
      c.commit = f.commit;
    }
  } else if (name == "ls") {
    c.what = verb::ls;
    ok = expect_args(name, *w, 0, "ls [--project NAME]");
    if (ok) {
      ok = only(true, false, false);
    }
  } else if (name == "logs") {
    c.what = verb::logs;
    ok = expect_args(name, *w, 1, "logs <deployment-id> [-f]");
    if (ok) {
      ok = only(false, false, true);
    }
    if (ok) {
      c.target = w->args[0];
      c.follow = f.follow.value_or(w->dash_f);
    }
  } else if (name == "promote") {
    c.what = verb::promote;
    ok = expect_args(name, *w, 2, "promote <project> <deployment-id>");
    if (ok) {
      ok = only(false, false, false);
    }
    if (ok) {
      c.target = w->args[0];
      c.deployment_id = w->args[1];
    }
  } else if (name == "rollback") {
    c.what = verb::rollback;
    ok = expect_args(name, *w, 1, "rollback <project>");
    if (ok) {
      ok = only(false, false, false);
    }
    if (ok) {
      c.target = w->args[0];
    }
  } else if (name == "cancel") {
    c.what = verb::cancel;
    ok = expect_args(name, *w, 1, "cancel <deployment-id>");
    if (ok) {
      ok = only(false, false, false);
    }
    if (ok) {
      c.target = w->args[0];
    }
  } else if (name == "cache") {
    c.what = verb::cache_clear;
    ok = expect_args(name, *w, 2, "cache clear <project>");
    if (ok && w->args[0] != "clear") {
      ok = bad(
          fmt::format("unknown cache command '{}': deployctl cache clear <project>", w->args[0]));
    }
    if (ok) {
      ok = only(false, false, false);
    }
    if (ok) {
      c.target = w->args[1];
    }
  } else if (name == "hooks") {
    auto sub = w->args.empty() ? std::string() : w->args[0];
    if (sub == "ls") {
      c.what = verb::hooks_ls;
      ok = expect_args(name, *w, 1, "hooks ls --project NAME");
    } else if (sub == "create") {
      c.what = verb::hooks_create;
      ok = expect_args(name, *w, 2, "hooks create <branch> --project NAME");
    } else if (sub == "rm") {
      c.what = verb::hooks_rm;
      ok = expect_args(name, *w, 2, "hooks rm <hook-id> --project NAME");
    } else {
      return bad("deployctl hooks ls | create <branch> | rm <hook-id>, with --project NAME");
    }
    if (ok) {
      ok = only(true, false, false);
    }
    if (ok && !f.project) {
      ok = bad("hooks needs --project NAME");
    }
    if (ok && w->args.size() == 2) {
      c.target = w->args[1];
    }
  } else if (name == "link") {
    c.what = verb::link;
    ok = expect_args(name, *w, 2, "link <project> <git-url>");
    if (ok) {
      ok = only(false, false, false);
    }
    if (ok && !looks_like_git_url(w->args[1])) {
      ok = bad(fmt::format("'{}' is not a git URL", w->args[1]));
    }
    if (ok) {
      c.target = w->args[0];
      c.git_url = w->args[1];
    }
  } else if (name == "env") {
    c.what = verb::env;
    if (w->args.empty()) {
      return bad(
          "env takes a project: deployctl env <project> [--target production|preview|fork] "
          "[NAME=VALUE | NAME= ...]");
    }
    ok = only(false, false, false);
    if (ok && f.target) {
      if (*f.target != "production" && *f.target != "preview" && *f.target != "fork") {
        return bad("--target must be production, preview or fork");
      }
      c.env_field = *f.target + "_env";
    }
    if (ok) {
      c.target = w->args[0];
      for (size_t i = 1; i < w->args.size(); ++i) {
        const auto& a = w->args[i];
        auto eq = a.find('=');
        if (eq == std::string::npos || eq == 0) {
          return bad(fmt::format("'{}' is not NAME=VALUE (NAME= removes NAME)", a));
        }
        auto value = a.substr(eq + 1);
        c.env_changes.emplace_back(a.substr(0, eq),
                                   value.empty() ? std::nullopt : std::optional(value));
      }
    }
  } else if (name == "domains") {
    static constexpr std::string_view usage =
        "domains add|rm|verify|primary|serve <project> <domain>, or domains ls <project>";
    std::string sub = w->args.empty() ? "" : w->args[0];
    if (sub == "ls") {
      c.what = verb::domains_ls;
      ok = expect_args(name, *w, 2, usage);
    } else if (sub == "add" || sub == "rm" || sub == "verify" || sub == "primary" ||
               sub == "serve") {
      c.what = sub == "add"       ? verb::domains_add
               : sub == "rm"      ? verb::domains_rm
               : sub == "verify"  ? verb::domains_verify
               : sub == "primary" ? verb::domains_primary
                                  : verb::domains_serve;
      ok = expect_args(name, *w, 3, usage);
    } else {
      ok = bad(fmt::format("unknown domains command '{}': deployctl {}", sub, usage));
    }
    if (ok) {
      // --branch picks what an added or re-pointed domain serves.
      ok = only(false, sub == "add" || sub == "serve", false);
    }
    if (ok) {
      c.target = w->args[1];
      c.domain = w->args.size() > 2 ? w->args[2] : "";
      c.ref = branch;
    }
  } else if (name == "protect") {
    c.what = verb::protect;
    static constexpr std::string_view usage = "protect <project> [off | previews | all [<user>]]";
    if (w->args.empty() || w->args.size() > 3) {
      return bad(fmt::format("protect takes a project: deployctl {}", usage));
    }
    ok = only(false, false, false);
    if (ok) {
      c.target = w->args[0];
      c.protection_scope = w->args.size() > 1 ? w->args[1] : "";
      c.protection_user = w->args.size() > 2 ? w->args[2] : "";
      bool known = c.protection_scope.empty() || c.protection_scope == "off" ||
                   c.protection_scope == "previews" || c.protection_scope == "all";
      if (!known || (c.protection_scope == "off" && !c.protection_user.empty())) {
        return bad(fmt::format("deployctl {}", usage));
      }
    }
  } else if (name == "forks" || name == "shadowing") {
    bool forks = name == "forks";
    c.what = forks ? verb::forks : verb::shadowing;
    std::string usage =
        forks ? "forks <project> [on | off]" : "shadowing <project> [files | rules]";
    if (w->args.empty() || w->args.size() > 2) {
      return bad(fmt::format("{} takes a project: deployctl {}", name, usage));
    }
    ok = only(false, false, false);
    if (ok) {
      c.target = w->args[0];
      c.setting = w->args.size() > 1 ? w->args[1] : "";
      bool known = c.setting.empty() || (forks ? c.setting == "on" || c.setting == "off"
                                               : c.setting == "files" || c.setting == "rules");
      if (!known) {
        return bad(fmt::format("deployctl {}", usage));
      }
    }
  } else {
    return bad(fmt::format("unknown command '{}' (see --help)", name));
  }
  if (!ok) {
    return ok.error();
  }
  c.project = f.project;
  c.ref = branch;
  return c;
}

std::string_view commands_help() noexcept {
  return R"(Commands:
  deploy <git-url | directory> [--project NAME] [--branch BRANCH] [--commit SHA]
         [--follow[=false]] [--no-cache]
      Queue a deployment. --branch (older name --ref) builds that branch: the project's
      production branch goes to production, any other to a preview at <project>--<branch>;
      without it, the production branch. --commit builds exactly that commit (a full sha,
      which must be on the branch) instead of the branch's head. A directory is packed into a tar.gz (without .git, node_modules and
      the patterns of its .deployignore) and uploaded. --follow (the default when stdout is a
      terminal) streams the logs and exits 0 when ready, 1 when failed or canceled.
      --no-cache builds without restoring the project's build cache (a new one is written).
  ls [--project NAME]           projects, or a project's deployments newest first (with each
                                one's branch, target and commit)
  logs <id> [-f]                a deployment's logs; -f follows them to the end
  promote <project> <id>        put a ready deployment in production
  rollback <project>            promote the newest ready deployment older than production
  cancel <id>                   cancel a queued or running deployment
  cache clear <project>         empty the project's build cache: its next build is cold
  link <project> <git-url>      make (or find) the project for a repository and a new webhook
                                secret; prints the webhook URL and the secret to paste in the
                                forge (GitHub, GitLab, Gitea/Forgejo). Shown once: run it again
                                to rotate the secret
  hooks ls --project NAME       the project's deploy hooks
  hooks create <branch> --project NAME
                                a deploy hook: prints its URL, which deploys the branch on POST
                                with no other credential (shown once)
  hooks rm <hook-id> --project NAME
                                revoke a deploy hook
  env <project> [--target production|preview|fork] [NAME=VALUE | NAME= ...]
                                list or change the project's build variables: of every target,
                                or the overrides of one (production or preview builds); fork:
                                the whole environment of forks' pull request builds
  domains ls <project>          the project's custom domains, their state and certificate
  domains add <project> <domain> [--branch B]  add a domain (pending until verified; never
                                served before) for production, or for branch B
  domains verify <project> <domain>  check ownership: a TXT record _dp-verify.<domain> holding
                                the token, or http://<domain>/.well-known/dp-verify/<token>
                                answered through the platform; then it is served
  domains primary <project> <domain> make it the primary: its apex/www twin redirects to it
  domains serve <project> <domain> [--branch B]  serve branch B's latest deployment (its
                                preview alias) instead of production; without --branch: production
  domains rm <project> <domain>      remove it (no longer served)
  protect <project> [off | previews | all [<user>]]
                                HTTP Basic auth in front of the project's sites: previews
                                (every alias but production's) or all. With <user>, the
                                password is read from the first line of stdin (stored hashed);
                                without, the stored credentials stay. No scope: show it
  forks <project> [on | off]    build pull requests from forks (with the fork env only, no
                                build cache) or skip them (the default). None: show it
  shadowing <project> [files | rules]
                                whether a file shadows a _redirects rule without ! (files, the
                                default: Netlify's) or every rule applies (rules: Cloudflare's);
                                from the next deployment on. None: show it
Exit codes: 0 ok, 1 failed (or an API error), 2 bad input, 3 API unreachable.
)";
}

}  // namespace dp::cli
