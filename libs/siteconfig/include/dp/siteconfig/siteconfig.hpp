// A site's own hosting rules: Cloudflare Pages' and Netlify's `_redirects` and `_headers`, and
// Vercel's `vercel.json` (redirects, rewrites, headers, cleanUrls, trailingSlash), compiled once
// by the trusted runner at build time into a `rule_set`, written as JSON beside the manifest,
// and loaded once per deployment by the proxy, which matches requests against it without parsing
// any user file.
//
// The three steps:
// - compile(): reads the files (regular files directly in the directory only: a symlink is never
//   followed, a file over options::max_file_bytes is refused; the build is hostile), returns the
//   rule set and diagnostics {file, line, message, severity}. A warning drops one rule and says
//   why; an error means a whole file could not be compiled: the deployment goes on without that
//   file's rules. compile() itself never fails.
// - to_json() / parse_rule_set(): the compiled form, versioned, strict on read.
// - match(), headers_for(), protection_for() + verify(): the proxy's per-request calls. Pure,
//   no parsing, no regex: a hash lookup for static rules, then a scan of at most
//   limits::max_dynamic_rules dynamic ones, each a linear segment match.
//
// Semantics and sources: libs/siteconfig/README.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::siteconfig {

// ---- the compiled form ----

// One '/'-separated segment of a source pattern: a literal (`param` empty: the segment equals
// `prefix`), or `prefix` + a placeholder matching one or more characters other than '/' +
// `suffix`. An optional segment (Vercel's `/:p?`) may be absent together with its '/'.
struct segment {
  std::string prefix;
  std::string param;  // the capture's name; "" for a literal segment
  std::string suffix;
  bool optional = false;
};

// What a pattern may match after its segments.
enum class tail_kind : uint8_t {
  none,       // nothing: the path ends here (or with one '/' when trailing_slash)
  splat,      // `*` / `(.*)`: '/' + tail_prefix + anything (possibly empty) + tail_suffix
  any_segs,   // Vercel's `/:p*`: nothing, or '/' + one or more characters
  some_segs,  // Vercel's `/:p+`: '/' + one or more characters
};

// A source pattern, decoded (matched against decoded paths; case-sensitive; the trailing slash
// is significant, as Cloudflare's and Vercel's matchers do).
struct pattern {
  std::vector<segment> segments;
  tail_kind tail = tail_kind::none;
  std::string tail_prefix;      // splat only: literal text of the splat's segment before the `*`
  std::string tail_suffix;      // splat only: literal text after the `*` ("/*.jpg": ".jpg")
  std::string tail_name;        // the tail's capture name ("splat", "path", "$1")
  bool trailing_slash = false;  // tail none: the source ends in '/'

  // No placeholder and no tail: the pattern is one exact path (a hash key).
  bool is_static() const noexcept;
  // The exact path of a static pattern ("/a/b", "/a/", "/").
  std::string static_path() const;
  // Captures in order: segment params, then the tail.
  size_t capture_count() const noexcept;
};

// A destination: literal text, and capture references (index into the source's captures).
struct template_part {
  // capture < 0: literal text, used as written (redirects) or already decoded (rewrites).
  // capture >= 0: written before the capture's value only when that value is not empty (Vercel's
  // "/blog/:path*" with no path is "/blog", as path-to-regexp compiles it).
  std::string text;
  int capture = -1;  // >= 0: the source's capture of that index
};

// A redirect or a rewrite (status 200: another path of the same deployment, the URL unchanged).
struct redirect_rule {
  pattern source;
  std::vector<template_part> destination;  // for a rewrite: a decoded path, no query
  unsigned status = 302;
  // False: a file that exists for the request path shadows the rule (Netlify without `!`, every
  // Vercel rewrite). True: the rule applies whether or not a file exists (Cloudflare; `!`;
  // Vercel redirects). Decided at compile time from options::shadowing and the rule's origin.
  bool over_files = true;
  std::string origin;  // "_redirects:12", "vercel.json:redirects[3]" (for logs)
};

// How a header rule's value combines with the same name set by an earlier matching rule.
enum class header_merge : uint8_t {
  join,     // Cloudflare's `_headers`: values joined with ", "
  replace,  // vercel.json: the later rule's value wins
};

struct header_entry {
  std::string name;   // as written (compared case-insensitively)
  std::string value;  // as written; `:name` of a source capture is replaced by its value
  // The value split on the captures it names (empty when it names none); built by
  // rule_set::index(), not serialized.
  std::vector<template_part> parts;
};

struct header_rule {
  pattern source;
  std::vector<header_entry> set;
  std::vector<std::string> remove;  // `! Name`: dropped from what the earlier rules set
  header_merge merge = header_merge::join;
  std::string origin;
};

// One user of a Basic-Auth rule: PBKDF2-HMAC-SHA256(password, salt, iterations), never the
// password.
struct credential {
  std::string user;
  std::string salt_hex;
  std::string hash_hex;
};

// Netlify's `Basic-Auth: user:pass [user2:pass2]` under a `_headers` URL pattern.
struct protection_rule {
  pattern source;
  std::vector<credential> users;
  uint32_t iterations = 0;
  std::string origin;
};

enum class trailing_slash_mode : uint8_t {
  keep,    // no rule (vercel.json without trailingSlash)
  add,     // trailingSlash: true: "/about" → 308 "/about/" (not for a last segment with a '.')
  remove,  // trailingSlash: false: "/about/" → 308 "/about"
};

struct rule_set {
  static constexpr int current_version = 1;

  trailing_slash_mode trailing_slash = trailing_slash_mode::keep;
  bool clean_urls = false;  // vercel.json cleanUrls (the proxy's resolution already serves them)
  // Static redirects placed before the first dynamic one, in file order.
  std::vector<redirect_rule> static_redirects;
  // Everything from the first dynamic redirect on, in file order (bounded by the limits).
  std::vector<redirect_rule> dynamic_redirects;
  std::vector<header_rule> header_rules;  // file order
  std::vector<protection_rule> protections;

  bool empty() const noexcept;

  // The lookup indexes over the vectors above; rebuilt by index(), which compile() and
  // parse_rule_set() call. Not serialized.
  struct string_hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  using path_index =
      std::unordered_map<std::string, std::vector<uint32_t>, string_hash, std::equal_to<>>;
  path_index static_redirect_index;  // exact path → static_redirects indexes, in order
  path_index static_header_index;    // exact path → header_rules indexes of static rules
  std::vector<uint32_t> dynamic_header_rules;  // header_rules indexes of the others, in order
  void index();
};

// ---- compiling ----

// Limits, Cloudflare's by default. A rule past a limit is dropped with a warning.
struct limits {
  size_t max_static_redirects = 2000;
  size_t max_dynamic_redirects = 100;  // every source: _redirects and vercel.json together
  size_t max_rule_chars = 1000;        // one _redirects line, one vercel.json source/destination
  size_t max_header_rules = 100;       // _headers blocks and vercel.json headers together
  size_t max_header_line_chars = 2000;
  size_t max_captures = 8;       // placeholders in one source
  size_t max_credentials = 100;  // Basic-Auth users in _headers (each hashed at compile time)
};

// Whether a file existing for the request path shadows a `_redirects` rule without `!`.
enum class shadowing : uint8_t {
  files_win,  // Netlify: the file is served; `!` forces the rule (default, see README)
  rules_win,  // Cloudflare: rules apply whether or not a file exists
};

struct options {
  shadowing shadow = shadowing::files_win;
  limits limit;
  size_t max_file_bytes = 1 << 20;  // per file; larger files are refused (an error)
  uint32_t pbkdf2_iterations = 10000;
};

struct diagnostic {
  enum class severity : uint8_t {
    warning,  // one rule dropped (or one key ignored), the rest of the file applies
    error,    // the file as a whole was not compiled
  };
  std::string file;   // "_redirects", "_headers", "vercel.json"
  unsigned line = 0;  // 1-based; 0 when the message is about the whole file
  std::string message;
  severity level = severity::warning;
};

// "_redirects:12: warning: ..." for a build log.
std::string to_string(const diagnostic& d);

struct compiled {
  rule_set rules;
  std::vector<diagnostic> diagnostics;
};

// The texts of the files, as read (nullopt: no such file). The pure entry point: tests and the
// fuzzers use it; compile() reads the files and calls it.
struct sources {
  std::optional<std::string> redirects;    // _redirects
  std::optional<std::string> headers;      // _headers
  std::optional<std::string> vercel_json;  // vercel.json
};
compiled compile_sources(const sources& in, const options& opt);

// Reads `_redirects`, `_headers` and `vercel.json` directly in `output_dir` (vercel.json, which
// Vercel reads from the project's root, is looked for in `project_dir` when the output directory
// has none), then compile_sources. A symlink, a non-regular file or one over max_file_bytes is an
// error diagnostic naming it; a missing file is nothing.
compiled compile(const std::filesystem::path& output_dir, const options& opt,
                 const std::optional<std::filesystem::path>& project_dir = std::nullopt);
// The same through directory descriptors (the runner's, opened beneath its work directory);
// project_dir_fd < 0: none.
compiled compile_at(int output_dir_fd, const options& opt, int project_dir_fd = -1);

// ---- the compiled file ----

std::string to_json(const rule_set& r);
// Strict: an unknown version, a missing or mistyped field is errc::invalid_argument naming it.
// The result is indexed.
dp::result<rule_set> parse_rule_set(std::string_view text);

// ---- matching (the proxy, per request) ----

// What the rules make of a request.
struct outcome {
  enum class kind : uint8_t {
    none,      // no rule applies: serve the path as usual
    redirect,  // answer `status` with Location: `location`
    rewrite,   // serve `location` (a decoded path in the same deployment) with status 200
  } type = kind::none;
  unsigned status = 0;
  std::string location;
  const redirect_rule* rule = nullptr;  // nullptr for the trailingSlash redirect
};

// `path`: the decoded request path, starting with '/' (a trailing '/' when the request had one);
// `raw_query`: the request's query without '?', as received; `file_exists`: whether the path
// resolves to a file of the deployment (what a shadowable rule yields to).
// Order: the trailingSlash redirect, then the first applicable rule (static ones by one hash
// lookup, then the dynamic ones in order). A redirect's Location keeps the request's query: it is
// appended to the destination's own query, if any. A rewrite is not matched again.
outcome match(const rule_set& r, std::string_view path, std::string_view raw_query,
              bool file_exists);
// The request's query joined to a redirect's Location (after the Location's own query, before
// its fragment), as match() does: match(r, path, "", e) then append_query(location, raw_query)
// is match(r, path, raw_query, e) (the proxy remembers outcomes per path, not per query).
void append_query(std::string& location, std::string_view raw_query);

struct header_field {
  std::string_view name;  // points into the rule set
  std::string value;
};
// Every matching header rule merged in file order (join or replace by name, case-insensitive),
// after `! Name` removals. `out` is cleared first (reuse it across requests). `removed`, when
// given, receives the names a matching rule removed and no later rule set again: the proxy drops
// its own default of such a header too.
void headers_for(const rule_set& r, std::string_view path, std::vector<header_field>& out,
                 std::vector<std::string_view>* removed = nullptr);

// The first protection rule (file order) whose pattern matches the path, or nullptr.
const protection_rule* protection_for(const rule_set& r, std::string_view path);
// True when `authorization` (the request's Authorization header: "Basic base64(user:pass)")
// names a user of the rule with the right password. Costs one PBKDF2 (rule.iterations).
bool verify(const protection_rule& rule, std::string_view authorization);

// ---- exposed for tests ----

// The captures of `path` against `p` (capture_count() of them), or false.
bool match_pattern(const pattern& p, std::string_view path, std::string_view* captures);

}  // namespace dp::siteconfig
