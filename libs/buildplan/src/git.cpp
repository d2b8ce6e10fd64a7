#include "dp/buildplan/git.hpp"

#include <boost/url/parse.hpp>

#include <algorithm>
#include <array>

namespace dp::buildplan {
namespace {

constexpr std::array<std::string_view, 3> supported_protocols = {"https", "http", "file"};

bool is_control_or_space(unsigned char c) {
  return c <= 0x20 || c == 0x7f;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    out += out.empty() ? "" : ",";
    out += s;
  }
  return out.empty() ? "none" : out;
}

}  // namespace

result<std::string> check_git_url(std::string_view url,
                                  const std::vector<std::string>& allowed_protocols) {
  auto bad = [&](std::string_view why) {
    return make_error(errc::invalid_argument, "git URL '{}' refused: {}", redact_url(url), why);
  };
  if (url.empty()) {
    return make_error(errc::invalid_argument, "git URL is empty");
  }
  if (url.size() > 2048) {
    return bad("longer than 2048 characters");
  }
  // git would read a leading '-' as an option, whatever comes before the "--".
  if (url.front() == '-') {
    return bad("it starts with '-'");
  }
  if (std::any_of(url.begin(), url.end(), [](char c) { return is_control_or_space(c); })) {
    return bad("it contains whitespace or control characters");
  }
  auto sep = url.find("://");
  if (sep == std::string_view::npos) {
    if (url.find("::") != std::string_view::npos) {
      return bad("git transport helpers (ext::, fd::, ...) are not allowed");
    }
    auto colon = url.find(':');
    if (colon != std::string_view::npos && colon < url.find('/')) {
      return bad("scp-like addresses (user@host:path) use ssh, which is not allowed; use https://");
    }
    return bad("not a URL; use https://host/path (or file:///path when file is allowed)");
  }
  std::string scheme(url.substr(0, sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // RFC 3986 scheme syntax; this also refuses helper forms such as "ext::https://".
  bool valid_scheme = !scheme.empty() && std::isalpha(static_cast<unsigned char>(scheme[0])) &&
                      std::all_of(scheme.begin(), scheme.end(), [](unsigned char c) {
                        return std::isalnum(c) || c == '+' || c == '-' || c == '.';
                      });
  if (!valid_scheme) {
    return bad("invalid scheme; git transport helpers are not allowed");
  }
  if (scheme.find("ssh") != std::string::npos) {
    return bad("ssh is not allowed; use https://");
  }
  if (std::find(supported_protocols.begin(), supported_protocols.end(), scheme) ==
      supported_protocols.end()) {
    return bad(fmt::format("protocol '{}' is not supported (https, http, file)", scheme));
  }
  if (std::find(allowed_protocols.begin(), allowed_protocols.end(), scheme) ==
      allowed_protocols.end()) {
    return bad(fmt::format("protocol '{}' is not allowed here (ALLOWED_GIT_PROTOCOLS={})", scheme,
                           join(allowed_protocols)));
  }
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) {
    return bad(fmt::format("not a valid URL ({})", parsed.error().message()));
  }
  if (scheme == "file") {
    if (parsed->path().empty() || parsed->path().front() != '/' ||
        !(parsed->encoded_host().empty() || parsed->encoded_host() == "localhost")) {
      return bad("a file URL needs an absolute path: file:///path/to/repo");
    }
  } else if (parsed->encoded_host().empty() || parsed->encoded_host().front() == '-') {
    return bad("no valid host");
  }
  return scheme;
}

result<void> check_git_ref(std::string_view ref) {
  auto bad = [&](std::string_view why) {
    return make_error(errc::invalid_argument, "git ref '{}' refused: {}", ref, why);
  };
  if (ref.empty()) {
    return bad("it is empty");
  }
  if (ref.size() > 255) {
    return bad("longer than 255 characters");
  }
  if (ref.front() == '-') {
    return bad("it starts with '-'");
  }
  for (char c : ref) {
    if (is_control_or_space(static_cast<unsigned char>(c)) ||
        std::string_view("~^:?*[\\").find(c) != std::string_view::npos) {
      return bad("it contains a space, a control character or one of ~ ^ : ? * [ \\");
    }
  }
  if (ref == "@" || ref.find("..") != std::string_view::npos ||
      ref.find("@{") != std::string_view::npos || ref.find("//") != std::string_view::npos) {
    return bad("it contains '..', '@{' or '//', or is '@'");
  }
  if (ref.front() == '/' || ref.back() == '/' || ref.back() == '.') {
    return bad("it starts or ends with '/' or ends with '.'");
  }
  // Each path component: no leading '.', no ".lock" suffix.
  for (std::string_view rest = ref; !rest.empty();) {
    auto slash = rest.find('/');
    auto part = rest.substr(0, slash);
    rest.remove_prefix(slash == std::string_view::npos ? rest.size() : slash + 1);
    if (part.front() == '.' || part.ends_with(".lock")) {
      return bad("a component starts with '.' or ends with '.lock'");
    }
  }
  return {};
}

std::string redact_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (;;) {
    auto sep = text.find("://", pos);
    if (sep == std::string_view::npos) {
      break;
    }
    size_t start = sep + 3;
    // The authority ends where a URL parser would end it, or where the URL ends in prose.
    size_t end = text.find_first_of("/?#\"'<> \t\r\n", start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    auto at = text.substr(start, end - start).rfind('@');
    out.append(text.substr(pos, start - pos));
    if (at != std::string_view::npos) {
      out += "***";
      out.append(text.substr(start + at, end - start - at));
    } else {
      out.append(text.substr(start, end - start));
    }
    pos = end;
  }
  out.append(text.substr(pos));
  return out;
}

std::string redact_url(std::string_view url) {
  return redact_text(url);
}

// git with no hooks, no fsmonitor, and only the allowed protocols, whatever the repository says.
std::vector<std::string> git_prefix(const std::vector<std::string>& allowed_protocols) {
  std::vector<std::string> argv = {"git",
                                   "-c",
                                   "core.hooksPath=/dev/null",
                                   "-c",
                                   "core.fsmonitor=false",
                                   "-c",
                                   "advice.detachedHead=false",
                                   "-c",
                                   "protocol.allow=never"};
  for (const auto& p : allowed_protocols) {
    if (std::find(supported_protocols.begin(), supported_protocols.end(), p) !=
        supported_protocols.end()) {
      argv.push_back("-c");
      argv.push_back(fmt::format("protocol.{}.allow=always", p));
    }
  }
  return argv;
}

std::vector<std::string> git_clone_argv(const clone_request& req) {
  auto argv = git_prefix(req.allowed_protocols);
  for (const char* a : {"clone", "--depth", "1", "--single-branch", "--no-tags"}) {
    argv.emplace_back(a);
  }
  if (!req.ref.empty()) {
    argv.push_back("--branch");
    argv.push_back(req.ref);
  }
  argv.push_back("--");
  argv.push_back(req.url);
  argv.push_back(req.dir);
  return argv;
}

std::vector<std::string> git_init_argv(const std::string& dir) {
  return {"git", "init", "-q", "--", dir};
}

std::vector<std::string> git_fetch_argv(const fetch_request& req) {
  auto argv = git_prefix(req.allowed_protocols);
  for (const auto& a :
       {std::string("-C"), req.dir, std::string("fetch"), std::string("--no-tags")}) {
    argv.push_back(a);
  }
  if (req.depth > 0) {
    argv.push_back("--depth");
    argv.push_back(std::to_string(req.depth));
  } else {
    argv.push_back(fmt::format("--shallow-since=@{}", req.shallow_since));
  }
  argv.push_back("--");
  argv.push_back(req.url);
  argv.push_back(req.what);
  return argv;
}

std::vector<std::string> git_checkout_argv(const std::string& dir, const std::string& commit) {
  return {"git", "-C", dir, "checkout", "-q", "--detach", commit, "--"};
}

std::vector<std::string> git_is_ancestor_argv(const std::string& dir, const std::string& commit) {
  return {"git", "-C", dir, "merge-base", "--is-ancestor", commit, "FETCH_HEAD"};
}

std::vector<std::string> git_commit_time_argv(const std::string& dir, const std::string& commit) {
  return {"git", "-C", dir, "show", "-s", "--format=%ct", commit, "--"};
}

std::vector<std::string> git_head_argv(const std::string& dir) {
  return {"git", "-C", dir, "rev-parse", "--verify", "HEAD"};
}

std::vector<std::string> git_branch_argv(const std::string& dir) {
  return {"git", "-C", dir, "symbolic-ref", "--short", "-q", "HEAD"};
}

config::environment git_env(const std::string& home) {
  return {{"PATH", "/usr/local/bin:/usr/bin:/bin"},
          {"HOME", home},
          {"LANG", "C.UTF-8"},
          {"GIT_TERMINAL_PROMPT", "0"},
          {"GIT_CONFIG_NOSYSTEM", "1"},
          {"GIT_CONFIG_GLOBAL", "/dev/null"}};
}

}  // namespace dp::buildplan
