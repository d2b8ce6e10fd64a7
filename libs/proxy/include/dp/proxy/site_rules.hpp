// The pure parts of serving a site through its own rules (dp::siteconfig's compiled
// _redirects, _headers and vercel.json): the path they match, whether a file shadows a rule, a
// rewrite's destination, and the headers they add to a response.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dp/http/message.hpp"
#include "dp/proxy/lru.hpp"
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

// The matching header rules' edits for one path, merged once: the fields they set go out as
// they are, after the proxy's own (http::response::shared_headers: no copy per response), and
// the proxy's own fields of those names, or named by `! Name`, are dropped (Cache-Control, for
// one). The compiled form never holds a framing, hop-by-hop or validator header (siteconfig
// refuses them at compile time and on load).
struct header_edits {
  using fields = std::vector<std::pair<std::string, std::string>>;
  std::shared_ptr<const fields> set;   // null: none
  std::vector<std::string_view> drop;  // names point into the rule set
  // Bit (size % 64) of every name in `drop`: a field of another length is passed over at once.
  uint64_t name_sizes = 0;
};
header_edits header_edits_for(const siteconfig::rule_set& r, std::string_view path);
// Replaces res.shared_headers.
void apply_header_edits(const header_edits& e, http::response& res);

// What a site's rules make of one request path: everything but what depends on the request's
// query (added to a redirect's Location by siteconfig::append_query) and Authorization.
struct path_rules {
  const siteconfig::protection_rule* guard = nullptr;  // points into the site's rule set
  siteconfig::outcome::kind type = siteconfig::outcome::kind::none;
  unsigned status = 0;
  std::string location;  // a redirect's (without the query) or a rewrite's decoded path
  header_edits headers;

  // Bytes held, roughly, for the memo's bound.
  size_t memory() const;
};
// `matched` is rule_path(p); s.rules is set.
path_rules rules_for(const site& s, const clean_path& p, std::string_view matched);
// The same through s.rule_memo: worked out on the path's first request, then a lookup. The memo
// holds up to site_rule_memo_bytes per site; the least recently used paths go first.
std::shared_ptr<const path_rules> remembered_rules_for(const site& s, const clean_path& p,
                                                       const std::string& matched);
inline constexpr size_t site_rule_memo_bytes = 64 << 10;

}  // namespace dp::proxy
