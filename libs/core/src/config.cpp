#include "dp/core/config.hpp"

#include <fmt/format.h>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <set>

namespace dp::config {
namespace {

bool is_ipv6_literal(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
           c == '.';
  });
}

std::optional<std::string> parse_port(std::string_view s, uint16_t& out) {
  int64_t v = 0;
  if (auto err = parse_int(s, 0, 65535, v)) {
    return "port must be a number from 0 to 65535";
  }
  out = static_cast<uint16_t>(v);
  return std::nullopt;
}

}  // namespace

bool is_dns_name(std::string_view s) {
  if (s.empty() || s.size() > 253) {
    return false;
  }
  size_t label = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-') {
        return false;
      }
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c == '-' && label > 0) || c == '_';
    if (!ok || ++label > 63) {
      return false;
    }
  }
  return s.back() != '-';
}

std::string host_port::to_string() const {
  if (host.find(':') != std::string::npos) {
    return fmt::format("[{}]:{}", host, port);
  }
  return fmt::format("{}:{}", host, port);
}

std::string redis_url::redacted() const {
  std::string auth;
  if (!username.empty() || !password.empty()) {
    auth = username + (password.empty() ? "" : ":***") + "@";
  }
  host_port hp{host, port};
  return fmt::format("redis://{}{}/{}", auth, hp.to_string(), db);
}

std::string redis_url::to_string() const {
  boost::urls::url u;
  u.set_scheme("redis");
  if (!username.empty() || !password.empty()) {
    u.set_user(username);
    if (!password.empty()) {
      u.set_password(password);
    }
  }
  // An IPv6 literal goes in brackets, a name or IPv4 address as it is.
  u.set_host_address(host);
  u.set_port_number(port);
  u.set_path("/" + std::to_string(db));
  return std::string(u.buffer());
}

std::optional<std::string> parse_int(std::string_view s, int64_t min, int64_t max, int64_t& out) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
    return fmt::format("expected an integer from {} to {}", min, max);
  }
  if (v < min || v > max) {
    return fmt::format("must be from {} to {}", min, max);
  }
  out = v;
  return std::nullopt;
}

std::optional<std::string> parse_bool(std::string_view s, bool& out) {
  if (s == "1" || s == "true" || s == "yes" || s == "on") {
    out = true;
  } else if (s == "0" || s == "false" || s == "no" || s == "off") {
    out = false;
  } else {
    return "expected true or false";
  }
  return std::nullopt;
}

std::optional<std::string> parse_host_port(std::string_view s, host_port& out) {
  std::string_view host;
  std::string_view port;
  if (s.starts_with('[')) {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return "expected [ipv6]:port";
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    if (!is_ipv6_literal(host)) {
      return "not an IPv6 address inside []";
    }
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      return "expected host:port";
    }
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return "write IPv6 addresses as [addr]:port";
    }
    if (!is_dns_name(host)) {
      return "host must be an IP address or a DNS name";
    }
  }
  host_port result;
  result.host = std::string(host);
  if (auto err = parse_port(port, result.port)) {
    return err;
  }
  out = std::move(result);
  return std::nullopt;
}

std::optional<std::string> parse_redis_url(std::string_view s, redis_url& out) {
  auto parsed = boost::urls::parse_absolute_uri(s);
  if (!parsed) {
    return "expected redis://[user[:password]@]host[:port][/db]";
  }
  const auto& u = *parsed;
  if (u.scheme() == "rediss") {
    return "TLS (rediss://) is not supported; use redis:// through a TLS proxy";
  }
  if (u.scheme() != "redis") {
    return "scheme must be redis://";
  }
  redis_url result;
  result.host = u.host_address();
  if (u.host_type() == boost::urls::host_type::ipv6) {
    // host_address() keeps no brackets for IPv6; that is what connect() wants.
  } else if (result.host.empty() || !is_dns_name(result.host)) {
    return "host must be an IP address or a DNS name";
  }
  if (u.has_port()) {
    if (auto err = parse_port(u.port(), result.port)) {
      return err;
    }
    if (result.port == 0) {
      return "port must be from 1 to 65535";
    }
  }
  if (u.has_userinfo()) {
    result.username = u.user();
    result.password = u.password();
  }
  std::string path = u.path();
  if (!path.empty() && path != "/") {
    int64_t db = 0;
    if (parse_int(std::string_view(path).substr(1), 0, 15, db)) {
      return "database must be a number from 0 to 15 (redis://host:port/<db>)";
    }
    result.db = static_cast<int>(db);
  }
  if (u.has_query() || u.has_fragment()) {
    return "query and fragment are not supported";
  }
  out = std::move(result);
  return std::nullopt;
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    auto comma = s.find(',');
    std::string_view item = s.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
      item.remove_prefix(1);
    }
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
      item.remove_suffix(1);
    }
    if (!item.empty()) {
      out.emplace_back(item);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    s.remove_prefix(comma + 1);
  }
  return out;
}

environment environment_from(char** envp) {
  environment env;
  for (char** p = envp; p && *p; ++p) {
    std::string_view kv(*p);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos) {
      env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
  }
  return env;
}

std::string flag_for(std::string_view env) {
  std::string flag = "--";
  for (char c : env) {
    flag += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return flag;
}

parser::parser(std::string program, std::string summary, std::string usage)
    : program_(std::move(program)), summary_(std::move(summary)), usage_(std::move(usage)) {}

void parser::add(setting s) {
  if (s.flag.empty()) {
    s.flag = flag_for(s.env);
  }
  settings_.push_back(std::move(s));
}

void parser::add_string(std::string env, std::string* target, std::string def, std::string help,
                        bool secret) {
  add({.env = std::move(env),
       .default_value = std::move(def),
       .help = std::move(help),
       .secret = secret,
       .apply = [target](std::string_view v) -> std::optional<std::string> {
         *target = std::string(v);
         return std::nullopt;
       }});
}

void parser::add_int(std::string env, int64_t* target, int64_t def, int64_t min, int64_t max,
                     std::string help) {
  add({.env = std::move(env),
       .default_value = std::to_string(def),
       .help = std::move(help),
       .apply = [=](std::string_view v) { return parse_int(v, min, max, *target); }});
}

void parser::add_bool(std::string env, bool* target, bool def, std::string help) {
  add({.env = std::move(env),
       .default_value = def ? "true" : "false",
       .help = std::move(help),
       .apply = [target](std::string_view v) { return parse_bool(v, *target); }});
}

void parser::add_choice(std::string env, std::string* target, std::string def,
                        std::vector<std::string> choices, std::string help) {
  help += fmt::format(" ({})", fmt::join(choices, "|"));
  add({.env = std::move(env),
       .default_value = std::move(def),
       .help = std::move(help),
       .apply = [target, choices](std::string_view v) -> std::optional<std::string> {
         if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
           return fmt::format("expected one of {}", fmt::join(choices, ", "));
         }
         *target = std::string(v);
         return std::nullopt;
       }});
}

void parser::add_list(std::string env, std::vector<std::string>* target, std::string def,
                      std::string help, std::vector<std::string> allowed) {
  add({.env = std::move(env),
       .default_value = std::move(def),
       .help = std::move(help),
       .apply = [target, allowed](std::string_view v) -> std::optional<std::string> {
         auto items = split_list(v);
         for (const auto& item : items) {
           if (!allowed.empty() &&
               std::find(allowed.begin(), allowed.end(), item) == allowed.end()) {
             return fmt::format("'{}' is not one of {}", item, fmt::join(allowed, ", "));
           }
         }
         *target = std::move(items);
         return std::nullopt;
       }});
}

void parser::add_checked_list(std::string env, std::vector<std::string>* target, std::string help,
                              std::function<bool(std::string_view)> valid, std::string rule,
                              bool secret) {
  add({.env = std::move(env),
       .help = std::move(help),
       .secret = secret,
       .apply = [target, valid = std::move(valid),
                 rule = std::move(rule)](std::string_view v) -> std::optional<std::string> {
         auto items = split_list(v);
         for (const auto& item : items) {
           if (!valid(item)) {
             return rule;
           }
         }
         *target = std::move(items);
         return std::nullopt;
       }});
}

void parser::add_host_port(std::string env, host_port* target, std::string def, std::string help) {
  add({.env = std::move(env),
       .default_value = std::move(def),
       .help = std::move(help),
       .apply = [target](std::string_view v) { return parse_host_port(v, *target); }});
}

void parser::add_redis_url(std::string env, redis_url* target, std::string def, std::string help) {
  add({.env = std::move(env),
       .default_value = std::move(def),
       .help = std::move(help),
       .apply = [target](std::string_view v) { return parse_redis_url(v, *target); }});
}

void parser::add_logging(std::string* level, std::string* format) {
  add_choice("LOG_LEVEL", level, "info", {"debug", "info", "warn", "error"}, "Minimum log level");
  add_choice("LOG_FORMAT", format, "text", {"text", "json"}, "Log line format");
}

std::string parser::help_text() const {
  std::string out = fmt::format("{} {}: {}\n\nUsage: {} {}\n\n", program_, DP_VERSION, summary_,
                                program_, usage_.empty() ? "[--flag value]..." : usage_);
  out +=
      "Every setting is read from its environment variable; the equivalent --flag wins.\n"
      "A bad value stops the program with exit code 2.\n\n";
  for (const auto& s : settings_) {
    std::string names = s.env.empty() ? s.flag : fmt::format("{}, {}", s.env, s.flag);
    if (!s.is_switch) {
      names += " <value>";
    }
    out += fmt::format("  {}\n      {}", names, s.help);
    if (s.secret) {
      out += " (secret; default: unset)";
    } else if (!s.is_switch) {
      out += fmt::format(" (default: {})", s.default_value.empty() ? "\"\"" : s.default_value);
    }
    out += '\n';
  }
  out +=
      "  --help\n      Print this help and exit\n  --version\n      Print the version and exit\n";
  return out;
}

parser::outcome parser::parse(int argc, const char* const* argv, const environment& env) {
  auto fail = [&](std::string line) {
    std::fprintf(stderr, "%s: %s\n", program_.c_str(), line.c_str());
    return outcome{false, 2};
  };
  std::map<size_t, std::string> from_flags;
  positionals_.clear();
  bool only_positionals = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (only_positionals || !arg.starts_with("--")) {
      positionals_.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positionals = true;
      continue;
    }
    if (arg == "--help") {
      std::fputs(help_text().c_str(), stdout);
      return {false, 0};
    }
    if (arg == "--version") {
      std::printf("%s %s\n", program_.c_str(), DP_VERSION);
      return {false, 0};
    }
    std::string_view name = arg;
    std::optional<std::string_view> value;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    auto it = std::find_if(settings_.begin(), settings_.end(),
                           [&](const setting& s) { return s.flag == name; });
    if (it == settings_.end()) {
      return fail(fmt::format("unknown flag {} (see --help)", name));
    }
    size_t index = static_cast<size_t>(it - settings_.begin());
    if (it->is_switch) {
      from_flags[index] = value ? std::string(*value) : "true";
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) {
        return fail(fmt::format("flag {} needs a value", name));
      }
      value = argv[++i];
    }
    from_flags[index] = std::string(*value);
  }
  for (size_t i = 0; i < settings_.size(); ++i) {
    const auto& s = settings_[i];
    std::string value = s.default_value;
    std::string source = s.env.empty() ? s.flag : s.env;
    if (auto f = from_flags.find(i); f != from_flags.end()) {
      value = f->second;
      source = s.flag;
    } else if (auto e = s.env.empty() ? env.end() : env.find(s.env); e != env.end()) {
      value = e->second;
    }
    if (auto err = s.apply(value)) {
      if (s.secret) {
        return fail(fmt::format("invalid {}: {}", source, *err));
      }
      return fail(fmt::format("invalid {}='{}': {}", source, value, *err));
    }
  }
  return {true, 0};
}

}  // namespace dp::config
