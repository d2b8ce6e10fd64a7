// What the parsers, the matcher and the JSON form share inside the library.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/siteconfig/siteconfig.hpp"

namespace dp::siteconfig::detail {

inline constexpr std::string_view redirects_file = "_redirects";
inline constexpr std::string_view headers_file = "_headers";
inline constexpr std::string_view vercel_file = "vercel.json";
// Captures one pattern may have, whatever limits::max_captures says: the matcher's stack array.
inline constexpr size_t max_capture_slots = 16;

bool iequals(std::string_view a, std::string_view b) noexcept;
std::string_view trim(std::string_view s) noexcept;
// Splits on spaces and tabs.
std::vector<std::string_view> fields(std::string_view line);
// The text without a leading UTF-8 byte order mark.
std::string_view strip_bom(std::string_view text) noexcept;
// Lines split on '\n', a trailing '\r' removed from each (CRLF files).
std::vector<std::string_view> lines(std::string_view text);

// Percent-decodes; nullopt for an invalid escape.
std::optional<std::string> percent_decode(std::string_view s);
// Appends `s` percent-encoded for a Location header: unreserved characters, sub-delims, ':',
// '@' and '/' kept.
void append_encoded(std::string& out, std::string_view s);

// An absolute URL ("https://...", "http://...", "//host..."): another host.
bool is_external(std::string_view destination) noexcept;
// True for an RFC 9110 token (a header name).
bool is_token(std::string_view s) noexcept;
// No control characters (a header value, a Location).
bool is_printable(std::string_view s) noexcept;
// Hop-by-hop, framing and representation headers the proxy owns: never set nor removed by a rule.
bool is_forbidden_header(std::string_view name) noexcept;

// Source patterns. On failure, `why` says what is not supported (the warning's text).
enum class syntax { cloudflare, vercel };
std::optional<pattern> parse_pattern(std::string_view source, syntax s, const limits& lim,
                                     std::string& why);
// The names of a pattern's captures, in capture order.
std::vector<std::string> capture_names(const pattern& p);

// A destination: `:name` (and Vercel's `:name*`, `$1`) naming a capture of `source` become capture
// references, the rest literal text; `decode` percent-decodes the literal text (a rewrite's path).
std::optional<std::vector<template_part>> parse_destination(std::string_view destination,
                                                            const pattern& source, syntax s,
                                                            bool decode, std::string& why);

// Adds a redirect or rewrite to `out` under the limits (a static rule after the first dynamic one
// counts as dynamic, as Cloudflare counts them); false with `why` when a limit drops it.
bool add_redirect(rule_set& out, redirect_rule rule, const limits& lim, std::string& why);

// A credential for `user` with `password`, hashed with a fresh salt.
credential make_credential(std::string_view user, std::string_view password, uint32_t iterations);

struct diagnostics {
  std::vector<diagnostic>& out;
  std::string_view file;
  void warn(unsigned line, std::string message) const;
  void error(unsigned line, std::string message) const;
};

void parse_redirects(std::string_view text, const options& opt, rule_set& out,
                     const diagnostics& d);
void parse_headers(std::string_view text, const options& opt, rule_set& out, const diagnostics& d);
void parse_vercel(std::string_view text, const options& opt, rule_set& out, const diagnostics& d);

}  // namespace dp::siteconfig::detail
