#include "dp/runner/sandbox.hpp"

#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <filesystem>

#include "dp/process/process.hpp"

namespace dp::runner {
namespace fs = std::filesystem;

namespace {

// What programs need from /etc: name resolution, TLS roots, users, time zone, the loader cache,
// Debian's alternatives. Not the rest (shadow, ssl/private, the platform's own configuration).
constexpr const char* etc_files[] = {
    "/etc/resolv.conf",     "/etc/hosts",        "/etc/nsswitch.conf", "/etc/host.conf",
    "/etc/gai.conf",        "/etc/services",     "/etc/protocols",     "/etc/passwd",
    "/etc/group",           "/etc/localtime",    "/etc/ssl/certs",     "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates", "/etc/alternatives", "/etc/ld.so.cache",   "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",    "/etc/os-release",
};

// Set by the platform; a project overriding them would break the sandbox's layout.
constexpr const char* system_ca_bundle = "/etc/ssl/certs/ca-certificates.crt";

constexpr std::string_view reserved[] = {"PATH", "HOME", "TMPDIR", "npm_config_cache",
                                         "COREPACK_HOME"};

bool equals_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool valid_env_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || std::isdigit(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

}  // namespace

std::vector<std::string> bwrap_argv(const sandbox_options& o,
                                    const std::vector<std::string>& command) {
  std::vector<std::string> a = {o.bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                                "--unshare-cgroup-try", "--unshare-net", "--die-with-parent",
                                // No controlling terminal to push input into (TIOCSTI).
                                "--new-session",
                                // Root inside is still root outside: take its capabilities away.
                                "--cap-drop", "ALL", "--hostname", "sandbox", "--ro-bind", "/usr",
                                "/usr"};
  auto add = [&a](std::initializer_list<std::string> args) { a.insert(a.end(), args); };
  bool egress = o.network == network_mode::egress;
  if (egress) {
    add({"--info-fd", std::to_string(sandbox_fds::info), "--block-fd",
         std::to_string(sandbox_fds::block)});
  }
  if (o.uid) {
    add({"--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"});
  }
  // Merged-/usr systems link /bin, /lib... into /usr; others get read-only binds of their own.
  for (const char* d : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    std::error_code ec;
    auto st = fs::symlink_status(d, ec);
    if (ec || !fs::exists(st)) {
      continue;
    }
    if (fs::is_symlink(st)) {
      add({"--symlink", fs::read_symlink(d, ec).string(), d});
    } else {
      add({"--ro-bind", d, d});
    }
  }
  // The directories above them, made explicitly: bwrap would make them 0700, which a build
  // running as its own uid could not enter.
  std::vector<std::string> parents;
  for (const char* f : etc_files) {
    for (auto p = fs::path(f).parent_path(); p != p.root_path(); p = p.parent_path()) {
      if (std::find(parents.begin(), parents.end(), p.string()) == parents.end()) {
        parents.push_back(p.string());
      }
    }
  }
  std::sort(parents.begin(), parents.end());  // parents before their children
  for (const auto& d : parents) {
    add({"--dir", d});
  }
  for (const char* f : etc_files) {
    if (egress && std::string_view(f) == "/etc/resolv.conf") {
      // The host's may name a resolver on its loopback or a private network: slirp's forwarder.
      // bwrap makes such files 0600 root: the build's own uid must read it too.
      add({"--perms", "0644", "--ro-bind-data", std::to_string(sandbox_fds::resolv), f});
    } else {
      add({"--ro-bind-try", f, f});
    }
  }
  add({"--proc", "/proc", "--dev", "/dev"});
  if (o.tmp_dir.empty()) {
    add({"--tmpfs", "/tmp"});
  } else {
    add({"--bind", o.tmp_dir.string(), "/tmp"});
  }
  add({"--bind", o.work_dir.string(), o.mount_point});
  if (auto home = o.env.find("HOME"); home != o.env.end()) {
    add({"--dir", home->second});
  }
  // The root is bwrap's own tmpfs (mount points only): make it read-only too.
  add({"--remount-ro", "/", "--chdir", o.cwd.empty() ? o.mount_point : o.cwd, "--clearenv"});
  for (const auto& [k, v] : o.env) {
    add({"--setenv", k, v});
  }
  a.push_back("--");
  if (o.uid) {
    auto switched = switch_uid_argv(*o.uid, command);
    a.insert(a.end(), switched.begin(), switched.end());
  } else {
    a.insert(a.end(), command.begin(), command.end());
  }
  return a;
}

std::vector<std::string> switch_uid_argv(unsigned uid, const std::vector<std::string>& command) {
  auto id = std::to_string(uid);
  std::vector<std::string> a = {
      "/usr/bin/setpriv", "--reuid=" + id,       "--regid=" + id,  "--clear-groups",
      "--inh-caps=-all",  "--bounding-set=-all", "--no-new-privs", "--"};
  a.insert(a.end(), command.begin(), command.end());
  return a;
}

config::environment sandbox_runner_env() {
  return {{"PATH", "/usr/local/bin:/usr/bin:/bin"}};
}

result<config::environment> sandbox_env(phase p, const std::string& mount_point,
                                        const config::environment& project_env) {
  config::environment env = {
      // corepack's shims of pnpm and yarn come first once the install has linked them there
      // (buildplan's plan.hpp).
      {"PATH", mount_point + "/.corepack/bin:/usr/local/bin:/usr/bin:/bin"},
      {"HOME", mount_point + "/home"},
      {"TMPDIR", "/tmp"},
      {"CI", "1"},
      {"LANG", "C.UTF-8"},
      {"npm_config_cache", mount_point + "/.npm"},
      {"npm_config_update_notifier", "false"},
      // corepack: its downloads and shims in the work directory, no prompt, package.json left
      // as it is. It fetches pnpm and yarn from the npm registry (yarn 2+ as @yarnpkg/cli-dist,
      // not from repo.yarnpkg.com), and without key checks: a registry that serves no
      // dist.signatures (as the one reached here) would fail every download. What it fetches
      // runs in this sandbox only, like any package the install fetches. The project's env may
      // override all but COREPACK_HOME.
      {"COREPACK_HOME", mount_point + "/.corepack"},
      {"COREPACK_ENABLE_DOWNLOAD_PROMPT", "0"},
      {"COREPACK_ENABLE_AUTO_PIN", "0"},
      {"COREPACK_NPM_REGISTRY", "https://registry.npmjs.org"},
      {"COREPACK_INTEGRITY_KEYS", "0"},
  };
  // Node trusts its own bundled roots only; its fetch (corepack's downloads, build scripts) also
  // trusts the system's bundle, which the sandbox binds and git, curl and npm (cafile) use: a
  // machine whose registry traffic passes a TLS proxy adds that proxy's CA there.
  if (std::error_code ec; std::filesystem::is_regular_file(system_ca_bundle, ec)) {
    env["NODE_EXTRA_CA_CERTS"] = std::string(system_ca_bundle);
  }
  // Production for the build (bundlers optimise); not for the install, which needs devDependencies.
  if (p == phase::build) {
    env["NODE_ENV"] = "production";
  }
  for (const auto& [k, v] : project_env) {
    if (!valid_env_name(k)) {
      return make_error(errc::invalid_argument,
                        "environment variable name '{}' is invalid: use letters, digits and '_', "
                        "not starting with a digit",
                        k);
    }
    if (v.find('\0') != std::string::npos) {
      return make_error(errc::invalid_argument, "environment variable {} contains a NUL byte", k);
    }
    for (auto r : reserved) {
      if (equals_ignore_case(k, r)) {
        return make_error(errc::invalid_argument,
                          "environment variable {} is set by the platform and cannot be overridden",
                          k);
      }
    }
    env[k] = v;
  }
  return env;
}

boost::asio::awaitable<result<void>> probe_bwrap(std::string bwrap) {
  process::options o;
  o.argv = {std::move(bwrap),
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-net",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--",
            "true"};
  o.env = sandbox_runner_env();
  o.timeout = std::chrono::seconds(10);
  std::string output;
  auto r = co_await process::run(std::move(o), [&output](process::stream, std::string_view line) {
    if (output.size() < 1000) {
      output += output.empty() ? "" : "; ";
      output += line;
    }
  });
  if (!r) {
    co_return make_error(errc::unavailable, "bubblewrap cannot run here: {}", r.error().message);
  }
  if (!r->success()) {
    co_return make_error(errc::unavailable, "bubblewrap cannot run here ({}): {}", r->describe(),
                         output.empty() ? "no output" : output);
  }
  co_return result<void>{};
}

}  // namespace dp::runner
