#include "dp/buildplan/plan.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "dp/buildplan/beneath.hpp"

namespace dp::buildplan {
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
  auto has = [&](const char* name) { return has_entry(project, name); };
  std::optional<boost::json::object> pkg;
  bool has_package = false;
  if (has("package.json")) {
    struct stat st {};
    auto real = resolve_beneath(project, "package.json");
    auto fd = real ? open_beneath(project, *real, O_PATH) : result<unique_fd>(real.error());
    has_package = fd && ::fstat(fd->get(), &st) == 0 && S_ISREG(st.st_mode);
  }
  if (has_package && (!s.install_command || !s.build_command)) {
    auto parsed = read_json_object(project, "package.json");
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
  } else if (nothing_to_install(*pkg, project)) {
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
  for (const char* name : output_candidates) {
    struct stat st {};
    if (::fstatat(project, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !(S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode))) {
      continue;
    }
    auto dir = resolve_inside(project, name, "output directory");
    if (!dir && dir.error().is(errc::not_found) && S_ISLNK(st.st_mode)) {
      continue;  // a dangling link, or one to a file: not an output directory
    }
    if (!dir) {
      return dir.error();
    }
    return chosen(std::move(*dir), fmt::format("output directory: {} (first of dist, build, out, "
                                               "public that exists)",
                                               name));
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
                    "no output directory after the build: none of dist, build, out, public "
                    "exists; set output_dir to where the build writes its files");
}

}  // namespace dp::buildplan
