// The pure parts of serving a site through its own rules (dp::siteconfig's compiled
// _redirects, _headers and vercel.json): the path they match, whether a file shadows a rule, a
// rewrite's destination, and the headers they add to a response.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dp/proxy/rules.hpp"
#include "dp/siteconfig/siteconfig.hpp"

namespace dp::proxy {

// The decoded request path as the rules match it: '/' first, the trailing slash kept.
std::string rule_path(const clean_path& p);

// Whether a file answers the path as it is (what a rule that files shadow yields to): the file,
// `<path>.html`, or the directory's index.html.
bool file_exists(const site& s, const clean_path& p);

// A rewrite's destination (a decoded path, no query) as a clean path: empty and "." segments
// dropped; nullopt for a ".." segment or a control character.
std::optional<clean_path> rewrite_path(std::string_view decoded);

// Where a rewrite lands: resolve(), and when that is one of the clean-URL redirects, its target
// (a rewrite never shows the visitor another URL).
resolution resolve_rewrite(const site& s, const clean_path& p);

// The matching header rules' fields on a response: each replaces the proxy's own field of that
// name (Cache-Control, for one), and `! Name` removes it. The compiled form never holds a framing,
// hop-by-hop or validator header (siteconfig refuses them at compile time and on load).
void apply_rule_headers(const siteconfig::rule_set& r, std::string_view path,
                        std::vector<std::pair<std::string, std::string>>& headers);

}  // namespace dp::proxy
