// What to run for a project, decided from its files before anything runs: the install command
// from the lockfile, the build command from package.json, and where the output is afterwards.
//
// Decisions (close to what Vercel does):
// - package-lock.json or npm-shrinkwrap.json: `npm ci`; no lockfile: `npm install`; a pnpm, yarn
//   or bun lockfile alone is an error naming the file unless install_command is given.
// - Both install commands pass --include=dev: build tools (Vite...) live in devDependencies and
//   npm would omit them if NODE_ENV=production reached the install (the project may set it).
// - Default build: `npm run build` when package.json has a "build" script; without package.json,
//   or without that script, nothing is built and the files are served as they are.
// - An empty install_command or build_command skips that step; others run via /bin/sh -c.
// - Output: output_dir if given, else the first of dist, build, out, public that exists after
//   the build, else (static site only) the project directory itself.
// - The project directory is opened before install runs and every later lookup starts from that
//   descriptor (beneath.hpp): what the build does to its tree cannot lead the runner outside it.
#pragma once

#include <filesystem>
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
};

struct command {
  std::vector<std::string> argv;
  std::string display;  // for the log: "npm ci" or the custom command
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
  // The framework's cache folders, relative to the project directory, kept between builds.
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
