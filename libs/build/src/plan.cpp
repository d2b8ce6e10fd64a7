#include "dp/build/plan.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <fstream>
#include <sstream>

namespace dp::build {
namespace fs = std::filesystem;

namespace {

constexpr const char* output_candidates[] = {"dist", "build", "out", "public"};

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

bool inside(const fs::path& base, const fs::path& p) {
  auto rel = p.lexically_relative(base);
  return !rel.empty() && *rel.begin() != "..";
}

result<std::string> read_small_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  if (!in || !(ss << in.rdbuf())) {
    return make_error(errc::io, "cannot read {}", p.filename().string());
  }
  return ss.str();
}

result<boost::json::object> read_json_object(const fs::path& p) {
  auto text = read_small_file(p);
  if (!text) {
    return text.error();
  }
  boost::system::error_code ec;
  auto pkg = boost::json::parse(*text, ec);
  if (ec || !pkg.is_object()) {
    return make_error(errc::invalid_argument, "{} is not a valid JSON object{}",
                      p.filename().string(), ec ? ": " + ec.message() : std::string());
  }
  return std::move(pkg.as_object());
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
bool nothing_to_install(const boost::json::object& pkg, const fs::path& dir) {
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
    std::error_code ec;
    if (!fs::exists(dir / name, ec)) {
      continue;
    }
    auto lock = read_json_object(dir / name);
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

}  // namespace

result<fs::path> resolve_inside(const fs::path& base, std::string_view rel, std::string_view what) {
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
  std::error_code ec;
  auto root = fs::canonical(base, ec);
  if (ec) {
    return make_error(ec, fmt::format("resolve {}", base.string()));
  }
  // Follows symlinks: a link in the repository must not lead the build outside it.
  auto target = fs::weakly_canonical(root / rel, ec);
  if (ec) {
    return make_error(ec, fmt::format("resolve {} '{}'", what, rel));
  }
  if (target != root && !inside(root, target)) {
    return bad("leads outside the repository (through a symlink)");
  }
  if (!fs::is_directory(target, ec)) {
    return make_error(errc::not_found, "{} '{}' is not a directory in the repository", what, rel);
  }
  return target;
}

result<build_plan> make_plan(const fs::path& repo_dir, const project_settings& s) {
  build_plan plan;
  auto dir = resolve_inside(repo_dir, s.root_dir, "root_dir");
  if (!dir) {
    return dir.error();
  }
  plan.project_dir = *dir;
  plan.output_dir = s.output_dir;
  bool has_package = fs::is_regular_file(plan.project_dir / "package.json");
  auto has = [&](const char* name) { return fs::exists(plan.project_dir / name); };
  std::optional<boost::json::object> pkg;
  if (has_package && (!s.install_command || !s.build_command)) {
    auto parsed = read_json_object(plan.project_dir / "package.json");
    if (!parsed) {
      return parsed.error();
    }
    pkg = std::move(*parsed);
  }

  if (s.install_command) {
    if (s.install_command->empty()) {
      plan.notes.push_back("install: skipped (install_command is empty)");
    } else {
      plan.install = shell(*s.install_command);
      plan.notes.push_back("install: custom install_command");
    }
  } else if (!has_package) {
    plan.notes.push_back("install: skipped (no package.json)");
  } else if (nothing_to_install(*pkg, plan.project_dir)) {
    // npm would start (about a second) only to find nothing to do.
    plan.notes.push_back(
        "install: skipped (package.json declares no dependencies and no install scripts)");
  } else if (has("package-lock.json") || has("npm-shrinkwrap.json")) {
    plan.install = command{{"npm", "ci", "--include=dev", "--no-audit", "--no-fund"}, "npm ci"};
    plan.notes.push_back(fmt::format("install: npm ci ({} found)", has("package-lock.json")
                                                                       ? "package-lock.json"
                                                                       : "npm-shrinkwrap.json"));
  } else {
    for (const char* other : {"pnpm-lock.yaml", "yarn.lock", "bun.lockb", "bun.lock"}) {
      if (has(other)) {
        return make_error(errc::invalid_argument,
                          "{} found but only npm is supported: set install_command (for example "
                          "\"corepack pnpm install\" or \"corepack yarn install\"), or commit a "
                          "package-lock.json",
                          other);
      }
    }
    plan.install =
        command{{"npm", "install", "--include=dev", "--no-audit", "--no-fund"}, "npm install"};
    plan.notes.push_back("install: npm install (no lockfile)");
  }

  if (s.build_command) {
    if (s.build_command->empty()) {
      plan.static_site = true;
      plan.notes.push_back("build: skipped (build_command is empty)");
    } else {
      plan.build = shell(*s.build_command);
      plan.notes.push_back("build: custom build_command");
    }
  } else if (!has_package) {
    plan.static_site = true;
    plan.notes.push_back("build: none (no package.json): the files are served as they are");
  } else {
    const auto* scripts = pkg->if_contains("scripts");
    const auto* build =
        scripts && scripts->is_object() ? scripts->as_object().if_contains("build") : nullptr;
    if (build && build->is_string()) {
      plan.build = command{{"npm", "run", "build"}, "npm run build"};
      plan.notes.push_back("build: npm run build");
    } else {
      plan.static_site = true;
      plan.notes.push_back(
          "build: none (package.json has no \"build\" script): the files are served as they are");
    }
  }
  return plan;
}

result<output_choice> find_output_dir(const build_plan& plan) {
  if (plan.output_dir) {
    auto dir = resolve_inside(plan.project_dir, *plan.output_dir, "output_dir");
    if (!dir) {
      return dir.error();
    }
    return output_choice{*dir, fmt::format("output directory: {} (output_dir)", *plan.output_dir)};
  }
  for (const char* name : output_candidates) {
    std::error_code ec;
    if (fs::is_directory(plan.project_dir / name, ec)) {
      auto dir = resolve_inside(plan.project_dir, name, "output directory");
      if (!dir) {
        return dir.error();
      }
      return output_choice{*dir, fmt::format("output directory: {} (first of dist, build, out, "
                                             "public that exists)",
                                             name)};
    }
  }
  if (plan.static_site) {
    return output_choice{plan.project_dir, "output directory: the project directory itself"};
  }
  return make_error(errc::not_found,
                    "no output directory after the build: none of dist, build, out, public "
                    "exists; set output_dir to where the build writes its files");
}

}  // namespace dp::build
