// The one configuration loader. A service declares its settings (environment variable, equivalent
// --flag, default, help, type); main() hands in argv and the environment; every value is parsed
// and validated before anything starts. Libraries never read the environment: they receive the
// plain structs that main fills from here.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dp::config {

// host:port to listen on or connect to. Host is an IPv4/IPv6 literal or a DNS name.
struct host_port {
  std::string host;
  uint16_t port = 0;
  std::string to_string() const;  // "[::1]:80" for IPv6
};

// redis://[user[:password]@]host[:port][/db]
struct redis_url {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  int db = 0;
  std::string username;
  std::string password;
  // The URL without its password, safe for a log line.
  std::string redacted() const;
  // The URL itself, password included, that parse_redis_url reads back to the same parts: user
  // and password percent-encoded ('@', ':', '/'), an IPv6 host in brackets, the db always.
  std::string to_string() const;
};

// Parsers used by the typed settings; each returns an error message or fills `out`.
// A DNS host name as a resolver takes it: labels of letters (either case), digits, '-' (not
// first or last) and '_', at most 63 each and 253 in all; one trailing dot is allowed.
bool is_dns_name(std::string_view s);
std::optional<std::string> parse_host_port(std::string_view s, host_port& out);
std::optional<std::string> parse_redis_url(std::string_view s, redis_url& out);
std::optional<std::string> parse_int(std::string_view s, int64_t min, int64_t max, int64_t& out);
std::optional<std::string> parse_bool(std::string_view s, bool& out);
// Comma-separated list, items trimmed, empty items dropped.
std::vector<std::string> split_list(std::string_view s);

using environment = std::map<std::string, std::string, std::less<>>;
environment environment_from(char** envp);

// Applies a raw value to its target, or returns why the value is wrong.
using apply_fn = std::function<std::optional<std::string>(std::string_view value)>;

struct setting {
  std::string env;            // REDIS_URL; empty for a flag-only setting
  std::string flag;           // --redis-url; derived from env when empty
  std::string default_value;  // applied (and validated) when neither env nor flag is given
  std::string help;
  bool secret = false;     // never echoed in --help or error messages
  bool is_switch = false;  // a flag without a value (--follow): sets "true"
  apply_fn apply;
};

class parser {
 public:
  parser(std::string program, std::string summary, std::string usage = {});

  void add(setting s);

  // Typed helpers. `choices`, `min`/`max` are validated; the target is written on success.
  void add_string(std::string env, std::string* target, std::string def, std::string help,
                  bool secret = false);
  void add_int(std::string env, int64_t* target, int64_t def, int64_t min, int64_t max,
               std::string help);
  void add_bool(std::string env, bool* target, bool def, std::string help);
  void add_choice(std::string env, std::string* target, std::string def,
                  std::vector<std::string> choices, std::string help);
  void add_list(std::string env, std::vector<std::string>* target, std::string def,
                std::string help, std::vector<std::string> allowed = {});
  // A comma-separated list whose every item passes `valid`; else the error is `rule`.
  void add_checked_list(std::string env, std::vector<std::string>* target, std::string help,
                        std::function<bool(std::string_view)> valid, std::string rule,
                        bool secret = false);
  void add_host_port(std::string env, host_port* target, std::string def, std::string help);
  void add_redis_url(std::string env, redis_url* target, std::string def, std::string help);
  // The usual LOG_LEVEL and LOG_FORMAT settings; configure the logger after parse().
  void add_logging(std::string* level, std::string* format);

  // Positional arguments (subcommands, files) are collected here.
  const std::vector<std::string>& positionals() const { return positionals_; }

  struct outcome {
    bool run = false;   // false: exit now with exit_code (help, version or an error was printed)
    int exit_code = 0;  // 0 for --help/--version, 2 for a bad setting
  };
  // Reads flags (which win) and the environment, then defaults. Prints --help/--version on stdout
  // and a bad value as one line on stderr: "<program>: invalid REDIS_URL='x': <reason>".
  outcome parse(int argc, const char* const* argv, const environment& env);

  std::string help_text() const;
  const std::string& program() const { return program_; }

 private:
  std::string program_;
  std::string summary_;
  std::string usage_;
  std::vector<setting> settings_;
  std::vector<std::string> positionals_;
};

// Flag name for an environment variable: REDIS_URL -> --redis-url.
std::string flag_for(std::string_view env);

}  // namespace dp::config
