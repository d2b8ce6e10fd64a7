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
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::build {

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
  std::filesystem::path project_dir;  // canonical, inside the repository
  std::optional<command> install;
  std::optional<command> build;
  std::optional<std::string> output_dir;  // the override, checked after the build
  bool static_site = false;               // nothing is built: the files are served as they are
  std::vector<std::string> notes;         // one log line per decision
};

// `rel` resolved under `base`: relative, no ".." segment, no backslash or control character, and
// still inside `base` after symlinks are followed; it must exist and be a directory.
// `what` names the setting in error messages ("root_dir").
result<std::filesystem::path> resolve_inside(const std::filesystem::path& base,
                                             std::string_view rel, std::string_view what);

result<build_plan> make_plan(const std::filesystem::path& repo_dir, const project_settings& s);

struct output_choice {
  std::filesystem::path dir;
  std::string note;  // "output directory: dist (first of dist, build, out, public)"
};
// After the build: where the files to publish are.
result<output_choice> find_output_dir(const build_plan& plan);

}  // namespace dp::build
