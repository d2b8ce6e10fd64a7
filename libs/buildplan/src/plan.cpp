#include "dp/buildplan/plan.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>

#include "dp/buildplan/beneath.hpp"
#include "dp/buildplan/framework.hpp"

namespace dp::buildplan {
namespace fs = std::filesystem;

namespace {

constexpr const char* generic_outputs[] = {"dist", "build", "out", "public"};

// What makes an install do something: anything to fetch or link, or a script npm runs around it.
constexpr const char* dependency_fields[] = {
    "dependencies",     "devDependencies",    "optionalDependencies",
    "peerDependencies", "bundleDependencies", "bundledDependencies",
    "workspaces"};
constexpr const char* install_scripts[] = {"preinstall", "install", "postinstall", "prepublish",
                                           "preprepare", "prepare", "postprepare"};

command shell(const std::string& cmd) {
  return {{"/bin/sh", "-c", cmd}, cmd};
}

constexpr size_t max_small_file = size_t{64} << 20;  // package.json or a lockfile

// A file of the project directory, through its descriptor: a symlink is followed only while it
// stays inside the directory, and only a regular file is read (never a FIFO or a device).
result<std::string> read_small_file(int dir, const std::string& name) {
  auto rel = resolve_beneath(dir, name);
  if (!rel) {
    return make_error(errc::invalid_argument, "cannot read {}: {}", name, rel.error().message);
  }
  auto fd = open_beneath(dir, *rel, O_RDONLY | O_NONBLOCK);
  struct stat st {};
  if (!fd || ::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return make_error(errc::io, "cannot read {}: not a regular file", name);
  }
  if (static_cast<uint64_t>(st.st_size) > max_small_file) {
    return make_error(errc::too_large, "{} is larger than {} bytes", name, max_small_file);
  }
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return make_error(errc::io, "cannot read {}", name);
    }
    if (n == 0) {
      return text;
    }
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > max_small_file) {
      return make_error(errc::too_large, "{} is larger than {} bytes", name, max_small_file);
    }
  }
}

result<boost::json::object> read_json_object(int dir, const std::string& name) {
  auto text = read_small_file(dir, name);
  if (!text) {
    return text.error();
  }
  boost::system::error_code ec;
  auto pkg = boost::json::parse(*text, ec);
  if (ec || !pkg.is_object()) {
    return make_error(errc::invalid_argument, "{} is not a valid JSON object{}", name,
                      ec ? ": " + ec.message() : std::string());
  }
  return std::move(pkg.as_object());
}

// An entry of the directory, of any type (a symlink counts, whatever it points at).
bool has_entry(int dir, const char* name) {
  struct stat st {};
  return ::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

bool declared(const boost::json::value* v) {
  if (!v || v->is_null()) {
    return false;
  }
  if (v->is_object()) {
    return !v->as_object().empty();
  }
  if (v->is_array()) {
    return !v->as_array().empty();
  }
  if (v->is_bool()) {
    return v->as_bool();  // "bundleDependencies": true bundles every dependency
  }
  return true;
}

// True when npm would install nothing: no dependency of any kind, no workspace, no script that
// npm runs around an install, and a lockfile (if any) that lists only the project itself. A
// lockfile npm would reject (unreadable, or out of step with package.json) is left to npm ci,
// which says what is wrong with it.
bool nothing_to_install(const boost::json::object& pkg, int dir) {
  for (const char* field : dependency_fields) {
    if (declared(pkg.if_contains(field))) {
      return false;
    }
  }
  if (const auto* scripts = pkg.if_contains("scripts"); scripts && scripts->is_object()) {
    for (const char* name : install_scripts) {
      if (scripts->as_object().contains(name)) {
        return false;
      }
    }
  }
  for (const char* name : {"package-lock.json", "npm-shrinkwrap.json"}) {
    if (!has_entry(dir, name)) {
      continue;
    }
    auto lock = read_json_object(dir, name);
    if (!lock) {
      return false;
    }
    if (const auto* packages = lock->if_contains("packages"); packages) {
      if (!packages->is_object()) {
        return false;
      }
      for (const auto& entry : packages->as_object()) {
        if (!entry.key().empty()) {
          return false;
        }
      }
    }
    if (declared(lock->if_contains("dependencies"))) {  // lockfileVersion 1
      return false;
    }
  }
  return true;
}

// The package manager and how corepack provides it.
struct package_manager {
  std::string name;      // npm, pnpm, yarn
  std::string spec;      // for `corepack install -g` ("pnpm@8"); "" when packageManager decides
  bool berry = false;    // yarn 2 or later
  std::string lockfile;  // "" when none
  std::string why;
};

// A lockfile's version line ("lockfileVersion: '6.0'", "  version: 8"), or "".
std::string yaml_scalar_after(std::string_view text, std::string_view key, size_t from = 0) {
  for (size_t at = text.find(key, from); at != std::string_view::npos;
       at = text.find(key, at + 1)) {
    bool line_start = at == 0 || text[at - 1] == '\n' || text[at - 1] == ' ';
    if (!line_start) {
      continue;
    }
    auto value = text.substr(at + key.size());
    value = value.substr(0, value.find('\n'));
    auto first = value.find_first_not_of(" \t'\"");
    auto last = value.find_last_not_of(" \t\r'\"");
    return first == std::string_view::npos ? std::string()
                                           : std::string(value.substr(first, last - first + 1));
  }
  return {};
}

result<package_manager> choose_package_manager(const boost::json::object& pkg, int dir) {
  auto has = [&](const char* name) { return has_entry(dir, name); };
  package_manager pm;
  static constexpr const char* lockfiles[] = {"yarn.lock",         "pnpm-lock.yaml",
                                              "package-lock.json", "npm-shrinkwrap.json",
                                              "bun.lockb",         "bun.lock"};
  for (const char* lock : lockfiles) {
    if (has(lock)) {
      pm.lockfile = lock;
      break;
    }
  }
  if (const auto* field = pkg.if_contains("packageManager")) {
    std::string_view spec = field->is_string() ? std::string_view(field->as_string()) : "";
    auto at = spec.find('@');
    std::string name(spec.substr(0, at));
    if (at == std::string_view::npos || at == 0 || at + 1 == spec.size() ||
        spec.find_first_of(" \t\n\"'$`\\;&|<>") != std::string_view::npos) {
      return make_error(errc::invalid_argument,
                        "package.json: packageManager must be <name>@<version> (for example "
                        "\"pnpm@9.15.0\"), not {}",
                        boost::json::serialize(*field));
    }
    if (name == "bun") {
      return make_error(errc::invalid_argument,
                        "package.json: packageManager {} names bun, which the build image does not "
                        "have: use npm, pnpm or yarn, or set install_command and build_command",
                        spec);
    }
    if (name != "npm" && name != "pnpm" && name != "yarn") {
      return make_error(errc::invalid_argument,
                        "package.json: packageManager {} is not npm, pnpm or yarn", spec);
    }
    pm.name = name;
    pm.berry = name == "yarn" && !spec.substr(at + 1).starts_with("1.");
    pm.why = name == "npm"
                 ? fmt::format("packageManager {} in package.json (the image's npm runs)", spec)
                 : fmt::format("packageManager {} in package.json", spec);
    // The named manager's own lockfile, if there is one; another manager's is not frozen.
    auto owns = [&](std::string_view lock) {
      return name == "npm"    ? lock == "package-lock.json" || lock == "npm-shrinkwrap.json"
             : name == "pnpm" ? lock == "pnpm-lock.yaml"
                              : lock == "yarn.lock";
    };
    pm.lockfile.clear();
    for (const char* lock : lockfiles) {
      if (owns(lock) && has(lock)) {
        pm.lockfile = lock;
        break;
      }
    }
    return pm;
  }
  if (pm.lockfile == "yarn.lock") {
    auto text = read_small_file(dir, "yarn.lock");
    if (!text) {
      return text.error();
    }
    pm.name = "yarn";
    auto meta = text->find("__metadata:");
    if (meta == std::string::npos) {
      pm.spec = "yarn@1";
      pm.why = "yarn.lock without __metadata (yarn 1)";
      return pm;
    }
    pm.berry = true;
    auto version = yaml_scalar_after(*text, "version:", meta);
    int v = 0;
    std::from_chars(version.data(), version.data() + version.size(), v);
    int major = v >= 8 ? 4 : v >= 6 ? 3 : 2;
    pm.spec = fmt::format("yarn@{}", major);
    pm.why = fmt::format("yarn.lock __metadata version {} (yarn {})", version, major);
    return pm;
  }
  if (pm.lockfile == "pnpm-lock.yaml") {
    auto text = read_small_file(dir, "pnpm-lock.yaml");
    if (!text) {
      return text.error();
    }
    pm.name = "pnpm";
    auto version = yaml_scalar_after(*text, "lockfileVersion:");
    // Vercel's table (packages/build-utils: detectPnpmVersion); 9.0 is written by pnpm 9 and 10.
    static const std::pair<std::string_view, int> majors[] = {{"5.3", 6}, {"5.4", 7}, {"6.0", 8},
                                                              {"6.1", 8}, {"7.0", 9}, {"9.0", 10}};
    auto hit = std::find_if(std::begin(majors), std::end(majors),
                            [&](const auto& m) { return m.first == version; });
    if (hit == std::end(majors)) {
      return make_error(errc::invalid_argument,
                        "pnpm-lock.yaml has lockfileVersion '{}', which no known pnpm writes: set "
                        "packageManager in package.json (for example \"pnpm@9.15.0\")",
                        version);
    }
    pm.spec = fmt::format("pnpm@{}", hit->second);
    pm.why = fmt::format("pnpm-lock.yaml lockfileVersion {} (pnpm {})", version, hit->second);
    return pm;
  }
  if (pm.lockfile.starts_with("bun.")) {
    return make_error(errc::invalid_argument,
                      "{} found, but the build image has no bun: commit a package-lock.json, "
                      "pnpm-lock.yaml or yarn.lock instead, or set install_command and "
                      "build_command",
                      pm.lockfile);
  }
  pm.name = "npm";
  pm.why = pm.lockfile.empty() ? "no lockfile" : pm.lockfile;
  return pm;
}

// Makes corepack's shim of `name` (pnpm or yarn) the one on PATH ($COREPACK_HOME/bin, see the
// runner's sandbox_env), so that scripts calling it get the same version. Local: no download.
std::string corepack_shims(const package_manager& pm) {
  return fmt::format(
      "mkdir -p \"$COREPACK_HOME/bin\" && corepack enable --install-directory "
      "\"$COREPACK_HOME/bin\" {} && ",
      pm.name);
}

command install_command(const package_manager& pm, bool scripts) {
  if (pm.name == "npm") {
    bool ci = pm.lockfile == "package-lock.json" || pm.lockfile == "npm-shrinkwrap.json";
    command c{{"npm", ci ? "ci" : "install", "--include=dev", "--no-audit", "--no-fund"},
              ci ? "npm ci" : "npm install"};
    if (!scripts) {
      c.argv.push_back("--ignore-scripts");
      c.display += " --ignore-scripts";
    }
    return c;
  }
  std::string args;
  if (pm.name == "pnpm") {
    args = pm.lockfile.empty() ? "--prod=false" : "--frozen-lockfile --prod=false";
    args += scripts ? "" : " --ignore-scripts";
  } else if (!pm.berry) {
    args = pm.lockfile.empty() ? "--production=false --non-interactive"
                               : "--frozen-lockfile --production=false --non-interactive";
    args += scripts ? "" : " --ignore-scripts";
  } else {
    // CI makes yarn 2+ immutable by default, which refuses to write a missing lockfile.
    args = pm.lockfile.empty() ? "--no-immutable" : "--immutable";
    args += scripts ? "" : " --mode=skip-build";
  }
  std::string fetch = pm.spec.empty() ? "corepack install" : "corepack install -g " + pm.spec;
  std::string run = fmt::format("{} install {}", pm.name, args);
  return {{"/bin/sh", "-c", fmt::format("{} && {}{}", fetch, corepack_shims(pm), run)},
          fmt::format("{} && {}", fetch, run)};
}

// `script` of package.json, or `exec` (a framework's command) through the package manager.
command run_command(const package_manager& pm, std::string_view script, std::string_view exec) {
  std::string line;
  if (!script.empty()) {
    line = pm.name == "yarn" ? fmt::format("yarn run {}", script)
                             : fmt::format("{} run {}", pm.name, script);
  } else {
    line = pm.name == "npm"    ? fmt::format("npm exec --no -- {}", exec)
           : pm.name == "pnpm" ? fmt::format("pnpm exec {}", exec)
                               : fmt::format("yarn run {}", exec);
  }
  if (pm.name == "npm") {
    std::vector<std::string> argv;
    for (size_t at = 0; at < line.size();) {
      auto end = line.find(' ', at);
      argv.emplace_back(line.substr(at, end == std::string::npos ? end : end - at));
      at = end == std::string::npos ? line.size() : end + 1;
    }
    return {std::move(argv), line};
  }
  return {{"/bin/sh", "-c", corepack_shims(pm) + line}, line};
}

}  // namespace

result<resolved_dir> resolve_inside(int base, std::string_view rel, std::string_view what) {
  auto bad = [&](std::string_view why) {
    return make_error(errc::invalid_argument, "{} '{}' {}", what, rel, why);
  };
  for (char c : rel) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '\\') {
      return bad("contains a control character or a backslash");
    }
  }
  if (!rel.empty() && rel.front() == '/') {
    return bad("must be relative to the repository");
  }
  for (const auto& part : fs::path(rel)) {
    if (part == "..") {
      return bad("must not contain '..'");
    }
  }
  // Symlinks are followed beneath `base` only: one that leaves it (absolute, or above it) is an
  // error, never a lookup on the host.
  auto real = resolve_beneath(base, rel);
  if (!real) {
    if (real.error().is(errc::not_found)) {
      return make_error(errc::not_found, "{} '{}' is not a directory in the repository", what, rel);
    }
    if (real.error().is(errc::invalid_argument)) {
      return bad(fmt::format("leads outside the repository (through a symlink): {}",
                             real.error().message));
    }
    return real.error();
  }
  auto fd = open_beneath(base, *real, O_RDONLY | O_DIRECTORY);
  if (!fd) {
    if (fd.error().is(errc::io)) {
      return fd.error();
    }
    return make_error(errc::not_found, "{} '{}' is not a directory in the repository", what, rel);
  }
  return resolved_dir{std::move(*real), std::move(*fd)};
}

result<build_plan> make_plan(const fs::path& repo_dir, const project_settings& s) {
  std::error_code ec;
  auto root = fs::canonical(repo_dir, ec);
  if (ec) {
    return make_error(ec, fmt::format("resolve {}", repo_dir.string()));
  }
  auto fd = open_directory(root.string());
  if (!fd) {
    return fd.error();
  }
  return make_plan(fd->get(), root, s);
}

result<build_plan> make_plan(int repo, const fs::path& repo_dir, const project_settings& s) {
  build_plan plan;
  auto dir = resolve_inside(repo, s.root_dir, "root_dir");
  if (!dir) {
    return dir.error();
  }
  plan.project_rel = std::move(dir->rel);
  plan.project_fd = std::move(dir->fd);
  plan.project_dir = plan.project_rel.empty() ? repo_dir : repo_dir / plan.project_rel;
  plan.output_dir = s.output_dir;
  int project = plan.project_fd.get();
  bool has_package = false;
  if (has_entry(project, "package.json")) {
    struct stat st {};
    auto real = resolve_beneath(project, "package.json");
    auto fd = real ? open_beneath(project, *real, O_PATH) : result<unique_fd>(real.error());
    has_package = fd && ::fstat(fd->get(), &st) == 0 && S_ISREG(st.st_mode);
  }
  plan.output_candidates.assign(std::begin(generic_outputs), std::end(generic_outputs));
  if (!has_package) {
    plan.notes.push_back("framework: none (no package.json)");
    if (s.install_command) {
      if (s.install_command->empty()) {
        plan.notes.push_back("install: skipped (install_command is empty)");
      } else {
        plan.install = shell(*s.install_command);
        plan.notes.push_back("install: custom install_command");
      }
    } else {
      plan.notes.push_back("install: skipped (no package.json)");
    }
    if (s.build_command && !s.build_command->empty()) {
      plan.build = shell(*s.build_command);
      plan.notes.push_back("build: custom build_command");
    } else {
      plan.static_site = true;
      plan.notes.push_back(s.build_command
                               ? "build: skipped (build_command is empty)"
                               : "build: none (no package.json): the files are served as they are");
    }
    return plan;
  }

  auto parsed = read_json_object(project, "package.json");
  if (!parsed) {
    return parsed.error();
  }
  const boost::json::object& pkg = *parsed;
  auto pm = choose_package_manager(pkg, project);
  if (!pm) {
    // Only the detected commands need the package manager.
    if (!s.install_command || !s.build_command) {
      return pm.error();
    }
    pm = package_manager{};
  }
  plan.package_manager = pm->name;
  std::map<std::string, std::string> pm_env;  // for both commands: yarn must see the same linker
  if (pm->berry) {
    auto rc = read_small_file(project, ".yarnrc.yml");
    if (!rc || rc->find("nodeLinker:") == std::string::npos) {
      pm_env["YARN_NODE_LINKER"] = "node-modules";
    }
  }
  auto read = [&](std::string_view name) -> std::optional<std::string> {
    auto text = read_small_file(project, std::string(name));
    return text ? std::optional<std::string>(std::move(*text)) : std::nullopt;
  };
  auto fw = detect_framework(pkg, read);

  // Install.
  if (s.install_command) {
    if (s.install_command->empty()) {
      plan.notes.push_back("install: skipped (install_command is empty)");
    } else {
      plan.install = shell(*s.install_command);
      plan.notes.push_back(s.install_scripts
                               ? "install: custom install_command"
                               : "install: custom install_command (install_scripts false applies "
                                 "to detected install commands only)");
    }
  } else if (nothing_to_install(pkg, project)) {
    // npm would start (about a second) only to find nothing to do.
    plan.notes.push_back(
        "install: skipped (package.json declares no dependencies and no install scripts)");
  } else {
    plan.install = install_command(*pm, s.install_scripts);
    plan.install->env.insert(pm_env.begin(), pm_env.end());
    plan.notes.push_back(fmt::format("install: {} ({}){}", plan.install->display, pm->why,
                                     pm->name == "npm" ? "" : ", through corepack"));
  }

  // Build.
  const auto* scripts_value = pkg.if_contains("scripts");
  const auto* scripts =
      scripts_value && scripts_value->is_object() ? &scripts_value->as_object() : nullptr;
  auto has_script = [&](std::string_view name) {
    const auto* v = scripts ? scripts->if_contains(name) : nullptr;
    return v && v->is_string();
  };
  if (s.build_command) {
    if (s.build_command->empty()) {
      plan.static_site = true;
      plan.notes.push_back("build: skipped (build_command is empty)");
    } else {
      plan.build = shell(*s.build_command);
      plan.notes.push_back("build: custom build_command");
    }
  } else if (fw) {
    plan.build = has_script(fw->fw->script) ? run_command(*pm, fw->fw->script, "")
                                            : run_command(*pm, "", fw->fw->command);
  } else if (has_script("build")) {
    plan.build = run_command(*pm, "build", "");
  } else {
    plan.static_site = true;
    plan.notes.push_back(
        "build: none (package.json has no \"build\" script): the files are served as they are");
  }
  if (plan.build && !s.build_command) {
    plan.build->env.insert(pm_env.begin(), pm_env.end());
    if (!fw) {
      plan.notes.push_back(fmt::format("build: {}", plan.build->display));
    }
  }

  // The framework's output and caches, and the line that says why.
  if (!fw) {
    plan.notes.insert(plan.notes.begin(), "framework: none detected in package.json");
    return plan;
  }
  plan.framework = std::string(fw->fw->slug);
  plan.output_candidates = fw->output_dirs;
  plan.cache_dirs.assign(fw->fw->cache_dirs.begin(), fw->fw->cache_dirs.end());
  std::string outputs;
  for (const auto& o : plan.output_candidates) {
    outputs += (outputs.empty() ? "" : " or ") + o;
  }
  plan.notes.insert(plan.notes.begin(),
                    fmt::format("framework: {} ({}): build {}, output {}{}", fw->fw->name, fw->why,
                                s.build_command ? "by build_command"
                                : plan.build    ? fmt::format("`{}`", plan.build->display)
                                                : "none",
                                s.output_dir ? *s.output_dir + " (output_dir)" : outputs,
                                plan.cache_dirs.empty()
                                    ? std::string()
                                    : fmt::format(", cache {}", fmt::join(plan.cache_dirs, " "))));
  plan.notes.insert(plan.notes.begin() + 1, fw->notes.begin(), fw->notes.end());
  return plan;
}

result<output_choice> find_output_dir(const build_plan& plan) {
  int project = plan.project_fd.get();
  auto chosen = [&](resolved_dir d, std::string note) {
    auto dir = d.rel.empty() ? plan.project_dir : plan.project_dir / d.rel;
    return output_choice{std::move(dir), std::move(d.rel), std::move(d.fd), std::move(note)};
  };
  if (plan.output_dir) {
    auto dir = resolve_inside(project, *plan.output_dir, "output_dir");
    if (!dir) {
      return dir.error();
    }
    return chosen(std::move(*dir),
                  fmt::format("output directory: {} (output_dir)", *plan.output_dir));
  }
  std::string list = fmt::format("{}", fmt::join(plan.output_candidates, ", "));
  for (const auto& name : plan.output_candidates) {
    // Beneath the project only: a candidate that is a link leading outside is an error, a
    // missing one or a file is not an output directory.
    auto dir = resolve_inside(project, name, "output directory");
    if (!dir && dir.error().is(errc::not_found)) {
      continue;
    }
    if (!dir) {
      return dir.error();
    }
    return chosen(std::move(*dir),
                  plan.framework.empty()
                      ? fmt::format("output directory: {} (first of {} that exists)", name, list)
                      : fmt::format("output directory: {} (the framework's)", name));
  }
  if (plan.static_site) {
    auto self = open_beneath(project, "", O_RDONLY | O_DIRECTORY);
    if (!self) {
      return self.error();
    }
    return chosen(resolved_dir{"", std::move(*self)},
                  "output directory: the project directory itself");
  }
  return make_error(errc::not_found,
                    "no output directory after the build: none of {} exists{}; set output_dir to "
                    "where the build writes its files",
                    list,
                    plan.framework == "nextjs"
                        ? " (Next.js writes out/ only with output: 'export' in next.config)"
                    : plan.framework == "sveltekit-1"
                        ? " (SvelteKit writes build/ only with @sveltejs/adapter-static)"
                        : "");
}

}  // namespace dp::buildplan
