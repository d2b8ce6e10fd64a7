// What to run for a project, decided from its files before anything runs: the framework, the
// package manager and its install command, the build command, and where the output is afterwards.
//
// Decisions (close to what Vercel does):
// - The framework comes from package.json (framework.hpp): it gives the build (its script, else
//   its command through the package manager), the output directories and the cache folders.
//   Without a framework: the "build" script if there is one, and the first of dist, build, out,
//   public. Each project setting overrides what was detected, on its own.
// - The package manager: package.json's `packageManager` field wins; else the lockfile, in
//   Vercel's order: yarn.lock, pnpm-lock.yaml, package-lock.json / npm-shrinkwrap.json; none: npm.
//   A bun lockfile or `packageManager: bun@...` is an error (no bun in the build image).
// - npm: `npm ci` with a lockfile, `npm install` without. pnpm and yarn run through corepack (Node
//   20 ships it): the install first makes corepack fetch the version the lockfile was written by
//   (pnpm: lockfileVersion 5.3 → 6, 5.4 → 7, 6.x → 8, 7.0 → 9, 9.0 → 10 as Vercel picks for new
//   projects; yarn: no __metadata → 1, version 4-5 → 2, 6-7 → 3, 8 → 4), or the packageManager
//   field's, and links its shims into $COREPACK_HOME/bin (on the sandbox's PATH), so that scripts
//   calling pnpm or yarn find the same one. The lockfile is frozen (`--frozen-lockfile`,
//   `--immutable`): an install that would change it fails, and the build stops there.
// - Every install includes devDependencies (build tools live there) even when the project sets
//   NODE_ENV=production: npm `--include=dev`, pnpm `--prod=false`, yarn 1 `--production=false`
//   (yarn 2+ always installs them). yarn 2+ gets YARN_NODE_LINKER=node-modules unless .yarnrc.yml
//   chooses a linker (Vercel does the same; the project's env may override it).
// - Install scripts run (npm's default, as on Vercel and Netlify); install_scripts=false adds
//   `--ignore-scripts` (yarn 2+: `--mode=skip-build`) to a detected install command.
// - An empty install_command or build_command skips that step; others run via /bin/sh -c.
// - Output: output_dir if given, else the first of the framework's directories (or of the generic
//   list) that exists after the build, else (static site only) the project directory itself.
// - The project directory is opened before install runs and every later lookup starts from that
//   descriptor (beneath.hpp): what the build does to its tree cannot lead the runner outside it.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"
#include "dp/core/unique_fd.hpp"

namespace dp::buildplan {

// The project's overrides as the job carries them; nullopt means "the default".
struct project_settings {
  std::string root_dir;  // relative to the repository; empty: the repository itself
  std::optional<std::string> install_command;
  std::optional<std::string> build_command;
  std::optional<std::string> output_dir;  // relative to root_dir
  bool install_scripts = true;            // false: a detected install runs no lifecycle script
};

struct command {
  std::vector<std::string> argv;
  std::string display;  // for the log: "npm ci" or the custom command
  // Defaults for the command's environment, beneath the project's own variables.
  std::map<std::string, std::string> env;
};

struct build_plan {
  // Where install and build run (their working directory): the repository's path joined with
  // project_rel. The runner never resolves it again: the build may replace any part of it with a
  // symlink. Everything the runner reads goes through project_fd.
  std::filesystem::path project_dir;
  std::string project_rel;  // relative to the repository, without symlinks; "" is the repository
  unique_fd project_fd;     // the project directory, opened before install and build ran
  std::optional<command> install;
  std::optional<command> build;
  std::optional<std::string> output_dir;  // the override, checked after the build
  bool static_site = false;               // nothing is built: the files are served as they are
  std::string framework;                  // its slug (framework.hpp); "" when none was detected
  std::string package_manager;            // npm, pnpm or yarn; "" without package.json
  // Where the output may be (the framework's, or dist, build, out, public), in order.
  std::vector<std::string> output_candidates;
  // The framework's folders worth keeping between builds, relative to the project directory.
  std::vector<std::string> cache_dirs;
  std::vector<std::string> notes;  // one log line per decision
};

// A directory found beneath another: its path relative to it without symlinks, and its
// descriptor, opened through real directories only (see beneath.hpp).
struct resolved_dir {
  std::string rel;  // "" is the base itself
  unique_fd fd;
};

// `rel` resolved beneath the directory `base`: relative, no ".." segment, no backslash or control
// character; a symlink on the way is followed only while it stays beneath `base` (relative
// target). It must exist and be a directory. `what` names the setting in error messages
// ("root_dir").
result<resolved_dir> resolve_inside(int base, std::string_view rel, std::string_view what);

// The plan for the repository open at `repo` (a descriptor opened before anything of the
// repository ran), whose path is `repo_dir`. Files are read through the descriptor.
result<build_plan> make_plan(int repo, const std::filesystem::path& repo_dir,
                             const project_settings& s);
// The same for a directory the caller made (the runner's fresh checkout): opened here, with
// O_NOFOLLOW on its last component.
result<build_plan> make_plan(const std::filesystem::path& repo_dir, const project_settings& s);

struct output_choice {
  std::filesystem::path dir;  // for messages: project_dir joined with rel, never opened by path
  std::string rel;            // relative to the project directory, without symlinks
  unique_fd fd;               // what scan_output walks and the upload reads from
  std::string note;           // "output directory: dist (first of dist, build, out, public)"
};
// After the build: where the files to publish are, found beneath plan.project_fd, so a build
// that swapped its checkout, root_dir or output directory for a symlink leads nowhere outside.
result<output_choice> find_output_dir(const build_plan& plan);

}  // namespace dp::buildplan
