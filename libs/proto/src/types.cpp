#include "dp/proto/types.hpp"

#include <array>

namespace dp::proto {
namespace {

// Wire names, indexed by the enum's value.
constexpr std::array<std::string_view, 8> status_names = {
    "queued", "cloning", "installing", "building", "uploading", "ready", "failed", "canceled"};
constexpr std::array<std::string_view, 3> stream_names = {"stdout", "stderr", "system"};
constexpr std::array<std::string_view, 7> phase_names = {
    "clone", "restore_cache", "install", "build", "upload", "save_cache", "go_live"};
constexpr std::array<std::string_view, 2> mode_names = {"spa", "static"};
constexpr std::array<std::string_view, 2> shadowing_names = {"files", "rules"};
constexpr std::array<std::string_view, 2> target_names = {"production", "preview"};
constexpr std::array<std::string_view, 3> scope_names = {"off", "previews", "all"};
constexpr std::array<std::string_view, 5> trigger_names = {"api", "cli", "dashboard", "hook",
                                                           "webhook"};

template <class E, size_t N>
std::optional<E> parse_enum(const std::array<std::string_view, N>& names, std::string_view s) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == s) {
      return static_cast<E>(i);
    }
  }
  return std::nullopt;
}

bool is_lower_alnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

}  // namespace

std::string_view to_string(deployment_status s) noexcept {
  return status_names[static_cast<size_t>(s)];
}
std::optional<deployment_status> parse_deployment_status(std::string_view s) noexcept {
  return parse_enum<deployment_status>(status_names, s);
}

std::string_view to_string(log_stream s) noexcept {
  return stream_names[static_cast<size_t>(s)];
}
std::optional<log_stream> parse_log_stream(std::string_view s) noexcept {
  return parse_enum<log_stream>(stream_names, s);
}

std::string_view to_string(log_phase p) noexcept {
  return phase_names[static_cast<size_t>(p)];
}
std::optional<log_phase> parse_log_phase(std::string_view s) noexcept {
  return parse_enum<log_phase>(phase_names, s);
}

std::string_view to_string(serve_mode m) noexcept {
  return mode_names[static_cast<size_t>(m)];
}
std::optional<serve_mode> parse_serve_mode(std::string_view s) noexcept {
  return parse_enum<serve_mode>(mode_names, s);
}

std::string_view to_string(redirects_shadowing s) noexcept {
  return shadowing_names[static_cast<size_t>(s)];
}
std::optional<redirects_shadowing> parse_redirects_shadowing(std::string_view s) noexcept {
  return parse_enum<redirects_shadowing>(shadowing_names, s);
}

std::string_view to_string(protection_scope s) noexcept {
  return scope_names[static_cast<size_t>(s)];
}
std::optional<protection_scope> parse_protection_scope(std::string_view s) noexcept {
  return parse_enum<protection_scope>(scope_names, s);
}

std::string_view to_string(deployment_target t) noexcept {
  return target_names[static_cast<size_t>(t)];
}
std::optional<deployment_target> parse_deployment_target(std::string_view s) noexcept {
  return parse_enum<deployment_target>(target_names, s);
}

std::string_view to_string(deployment_trigger t) noexcept {
  return trigger_names[static_cast<size_t>(t)];
}
std::optional<deployment_trigger> parse_deployment_trigger(std::string_view s) noexcept {
  return parse_enum<deployment_trigger>(trigger_names, s);
}

env_map build_env(const project& p, deployment_target target, bool fork) {
  if (fork) {
    return p.fork_env;
  }
  env_map env = p.env;
  for (const auto& [name, value] :
       target == deployment_target::production ? p.production_env : p.preview_env) {
    env[name] = value;
  }
  return env;
}

bool is_project_name(std::string_view s) noexcept {
  // "xn" would make "xn--<short id>", which browsers decode as punycode (an IDNA A-label).
  return is_stored_project_name(s) && s.find("--") == std::string_view::npos && s != "xn";
}

bool is_stored_project_name(std::string_view s) noexcept {
  return s.size() <= max_project_name && is_dns_label(s);
}

bool is_dns_label(std::string_view s) noexcept {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') {
    return false;
  }
  for (char c : s) {
    if (!is_lower_alnum(c) && c != '-') {
      return false;
    }
  }
  return true;
}

bool is_env_name(std::string_view s) noexcept {
  if (s.empty() || (s.front() >= '0' && s.front() <= '9')) {
    return false;
  }
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

bool is_safe_relative_path(std::string_view path) noexcept {
  if (path.empty() || path.find('\\') != std::string_view::npos ||
      path.find('\0') != std::string_view::npos) {
    return false;
  }
  // Every '/'-separated segment must be a real name: no leading '/', no "//", no trailing '/'.
  size_t start = 0;
  while (true) {
    size_t end = path.find('/', start);
    std::string_view seg = path.substr(start, end == std::string_view::npos ? end : end - start);
    if (seg.empty() || seg == "." || seg == "..") {
      return false;
    }
    if (end == std::string_view::npos) {
      return true;
    }
    start = end + 1;
  }
}

}  // namespace dp::proto
