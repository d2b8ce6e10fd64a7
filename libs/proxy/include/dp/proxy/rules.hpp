// The pure rules of the proxy, separate from any I/O so each is unit-tested on its own: request
// path decoding, Host parsing, path resolution through a deployment's manifest, conditional
// requests, byte ranges and Accept-Encoding negotiation.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dp/core/error.hpp"
#include "dp/proto/types.hpp"
#include "dp/siteconfig/siteconfig.hpp"

namespace dp::proxy {

template <class V>
class lru_cache;
struct path_rules;

// A request path after decode, normalize, check: segments joined by '/', no leading slash ("" is
// the root), and whether the request named a directory (a trailing slash).
struct clean_path {
  std::string rel;
  bool dir = false;
};

// Splits the raw path on '/', percent-decodes each segment, drops empty and "." segments, then
// refuses (errc::invalid_argument, answered 400): a path not starting with '/', longer than
// max_bytes, an invalid escape, ".." (plain or encoded), an encoded '/', a backslash, NUL or any
// control character inside a segment.
dp::result<clean_path> decode_path(std::string_view raw, size_t max_bytes = 1024);

// Percent-encodes a decoded path for a Location header ('/' kept, unreserved characters kept).
std::string encode_path(std::string_view path);

// What a Host header names: a label under the base domain, or a custom domain.
struct host_target {
  enum class kind { label, domain, none } type = kind::none;  // none: the base domain itself
  std::string name;                                           // the label or the fqdn
};

// Lowercases, drops the port and a trailing dot, validates DNS syntax. errc::invalid_argument for
// a malformed header (answered 400); an IP literal or a nested subdomain of the base domain gives
// kind::none (answered 404).
dp::result<host_target> parse_host(std::string_view host, std::string_view base_domain);

// One file as the proxy serves it: the manifest entry with its headers preformatted.
struct site_file {
  std::string path;  // relative, as in the manifest
  uint64_t size = 0;
  std::string etag;  // "\"<sha256>\""
  std::string content_type;
  std::string cache_control;
  const site_file* br = nullptr;    // precompressed variants uploaded beside the file
  const site_file* gzip = nullptr;  //
};

// A deployment's manifest, indexed for serving. Immutable once built.
// Not copyable: the variant pointers point into `files`, whose nodes a move keeps in place.
struct site {
  site() = default;
  site(site&&) = default;
  site(const site&) = delete;
  site& operator=(const site&) = delete;

  std::string deployment_id;
  proto::serve_mode mode = proto::serve_mode::spa;
  std::time_t created_at = 0;  // seconds
  std::string last_modified;   // HTTP date of created_at
  std::unordered_map<std::string, site_file> files;
  std::shared_ptr<const siteconfig::rule_set> rules;  // null: the site has none
  // What the rules make of each path, remembered (site_rules.hpp): bounded, thread-safe, and
  // gone with the site, so a new deployment never sees another's. Set with `rules`.
  std::shared_ptr<lru_cache<path_rules>> rule_memo;

  const site_file* find(std::string_view path) const;
};

site make_site(const proto::manifest& m);

// How a clean path is answered.
struct resolution {
  enum class kind {
    file,       // serve `file` with `status` (200; 404 for a 404.html page)
    redirect,   // 308 to `location` (a decoded path; the caller encodes it and adds the query)
    not_found,  // a plain 404
  } type = kind::not_found;
  const site_file* file = nullptr;
  unsigned status = 200;
  std::string location;
};

// "/" and "/dir/" serve index.html; "/about" serves about.html, or redirects to "/about/" when
// only about/index.html exists; "/about/" redirects to "/about" when only about.html exists
// (beside a folder about/ without an index, as SvelteKit and Next.js exports write pages);
// "/about.html" and "/dir/index.html" redirect to their clean form.
// Unknown paths: spa mode serves /index.html (200) unless the last segment has an extension
// (a missing asset such as /missing.js); static mode and missing assets serve the nearest
// 404.html walking up the path (404), else a plain 404.
resolution resolve(const site& s, const clean_path& p);

// If-None-Match: a list of entity tags or "*", weak comparison (W/ ignored), as for GET.
bool etag_matches(std::string_view if_none_match, std::string_view etag);
// An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"); nullopt when it does not parse.
std::optional<std::time_t> parse_http_date(std::string_view s);
std::string format_http_date(std::time_t t);

// A Range header against a representation of `size` bytes.
struct range_result {
  enum class kind {
    full,           // no range, a malformed one, another unit or several ranges: send 200
    partial,        // send 206 with bytes [first, last]
    unsatisfiable,  // send 416 with Content-Range: bytes */size
  } type = kind::full;
  uint64_t first = 0;
  uint64_t last = 0;
};
range_result parse_range(std::string_view header, uint64_t size);

// The content coding to send for an Accept-Encoding header when the file has the given
// precompressed variants: "br", "gzip" or "" (identity). Highest q wins, q=0 excludes, ties go to
// br, then gzip, then identity; an identity the header does not list ranks below any listed coding.
std::string_view negotiate_encoding(std::string_view accept_encoding, bool have_br, bool have_gzip);

// What a request for `f` is answered with: the file or one of its precompressed variants.
struct representation {
  const site_file* file = nullptr;  // its size, ETag (each variant has its own) and object
  std::string_view coding;          // Content-Encoding: "br", "gzip" or "" (identity)
  bool vary = false;  // f has variants: every response for it (304 too) says Vary: Accept-Encoding
};
representation choose_representation(const site_file& f, std::string_view accept_encoding);

}  // namespace dp::proxy
