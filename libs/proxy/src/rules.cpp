#include "dp/proxy/rules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "dp/core/hex.hpp"
#include "dp/proto/types.hpp"

namespace dp::proxy {
namespace {

dp::error bad_path(std::string_view why) {
  return dp::make_error(dp::errc::invalid_argument, std::string(why));
}

char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Calls f(item) for each comma-separated, trimmed, non-empty item.
template <class F>
void for_each_item(std::string_view list, F f) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    if (!item.empty()) {
      f(item);
    }
    if (comma == list.npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
}

bool parse_u64(std::string_view s, uint64_t& out) noexcept {
  if (s.empty() || s.size() > 19) {
    return false;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool is_dns_label(std::string_view l) noexcept {
  if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') {
    return false;
  }
  return std::all_of(l.begin(), l.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

}  // namespace

dp::result<clean_path> decode_path(std::string_view raw, size_t max_bytes) {
  if (raw.empty() || raw.front() != '/') {
    return bad_path("the path must start with '/'");
  }
  if (raw.size() > max_bytes) {
    return bad_path("the path is too long");
  }
  clean_path out;
  out.rel.reserve(raw.size());
  std::string seg;
  // Segments are split on the RAW path, so an encoded slash stays inside its segment and is seen.
  size_t pos = 1;
  while (pos <= raw.size()) {
    size_t end = std::min(raw.find('/', pos), raw.size());
    std::string_view r = raw.substr(pos, end - pos);
    seg.clear();
    for (size_t i = 0; i < r.size(); ++i) {
      char c = r[i];
      if (c == '%') {
        if (i + 2 >= r.size()) {
          return bad_path("invalid percent-encoding");
        }
        int hi = hex_value(r[i + 1]);
        int lo = hex_value(r[i + 2]);
        if (hi < 0 || lo < 0) {
          return bad_path("invalid percent-encoding");
        }
        c = static_cast<char>(hi * 16 + lo);
        i += 2;
      }
      auto u = static_cast<unsigned char>(c);
      if (c == '/' || c == '\\') {
        return bad_path("a path segment holds a slash or a backslash");
      }
      if (u < 0x20 || u == 0x7f) {
        return bad_path("a path segment holds a control character");
      }
      seg.push_back(c);
    }
    if (seg == "..") {
      return bad_path("the path holds '..'");
    }
    bool last = end == raw.size();
    if (!seg.empty() && seg != ".") {
      if (!out.rel.empty()) {
        out.rel.push_back('/');
      }
      out.rel.append(seg);
      out.dir = false;
    }
    if (last) {
      // "/a/" and "/a/." name the directory a; "/" is the root directory.
      out.dir = out.rel.empty() || seg.empty() || seg == ".";
      break;
    }
    pos = end + 1;
  }
  return out;
}

std::string encode_path(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
    if (keep) {
      out.push_back(c);
    } else {
      fmt::format_to(std::back_inserter(out), "%{:02X}", u);
    }
  }
  return out;
}

dp::result<host_target> parse_host(std::string_view host, std::string_view base_domain) {
  auto invalid = [] { return dp::make_error(dp::errc::invalid_argument, "invalid Host header"); };
  if (host.empty() || host.size() > 260) {
    return invalid();
  }
  // An IPv6 literal: valid, but no site lives there.
  if (host.front() == '[') {
    size_t close = host.find(']');
    if (close == host.npos) {
      return invalid();
    }
    return host_target{};
  }
  size_t colon = host.find(':');
  if (colon != host.npos) {
    uint64_t port = 0;
    if (!parse_u64(host.substr(colon + 1), port) || port > 65535) {
      return invalid();
    }
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
  }
  if (host.empty() || host.size() > 253) {
    return invalid();
  }
  std::string name(host.size(), '\0');
  std::transform(host.begin(), host.end(), name.begin(), lower);
  bool numeric = true;
  for (std::string_view rest = name; !rest.empty();) {
    size_t dot = rest.find('.');
    std::string_view label = rest.substr(0, dot);
    if (!is_dns_label(label)) {
      return invalid();
    }
    numeric = numeric &&
              std::all_of(label.begin(), label.end(), [](char c) { return c >= '0' && c <= '9'; });
    rest = dot == rest.npos ? std::string_view{} : rest.substr(dot + 1);
  }
  if (numeric) {
    return host_target{};  // an IPv4 literal
  }
  if (name == base_domain) {
    return host_target{};
  }
  if (name.size() > base_domain.size() + 1 && name.ends_with(base_domain) &&
      name[name.size() - base_domain.size() - 1] == '.') {
    std::string label = name.substr(0, name.size() - base_domain.size() - 1);
    if (label.find('.') != label.npos) {
      return host_target{};  // a.b.<base>: no such site
    }
    return host_target{host_target::kind::label, std::move(label)};
  }
  return host_target{host_target::kind::domain, std::move(name)};
}

const site_file* site::find(std::string_view path) const {
  auto it = files.find(std::string(path));
  return it == files.end() ? nullptr : &it->second;
}

site make_site(const proto::manifest& m) {
  site s;
  s.deployment_id = m.deployment_id;
  s.mode = m.mode;
  s.created_at = static_cast<std::time_t>(m.created_at / 1000);
  s.last_modified = format_http_date(s.created_at);
  s.files.reserve(m.files.size());
  for (const auto& [path, e] : m.files) {
    site_file f;
    f.path = path;
    f.size = static_cast<uint64_t>(std::max<int64_t>(e.size, 0));
    f.etag = fmt::format("\"{}\"", e.sha256);
    f.content_type = e.content_type.empty() ? "application/octet-stream" : e.content_type;
    f.cache_control = e.cache_control;
    s.files.emplace(path, std::move(f));
  }
  // Link each file to the variants uploaded beside it; the nodes do not move from here on.
  for (auto& [path, f] : s.files) {
    if (auto it = s.files.find(path + ".br"); it != s.files.end()) {
      f.br = &it->second;
    }
    if (auto it = s.files.find(path + ".gz"); it != s.files.end()) {
      f.gzip = &it->second;
    }
  }
  return s;
}

namespace {

std::string join(std::string_view dir, std::string_view name) {
  return dir.empty() ? std::string(name) : fmt::format("{}/{}", dir, name);
}

// The nearest 404.html from the directory of `rel` up to the root.
resolution not_found(const site& s, std::string_view dir) {
  for (;;) {
    if (const site_file* f = s.find(join(dir, "404.html"))) {
      return {resolution::kind::file, f, 404, {}};
    }
    if (dir.empty()) {
      return {};
    }
    size_t slash = dir.rfind('/');
    dir = slash == dir.npos ? std::string_view{} : dir.substr(0, slash);
  }
}

}  // namespace

resolution resolve(const site& s, const clean_path& p) {
  const std::string& rel = p.rel;
  if (p.dir) {
    if (const site_file* f = s.find(join(rel, "index.html"))) {
      return {resolution::kind::file, f, 200, {}};
    }
    // "name.html" beside a folder "name/" without an index (SvelteKit, Next.js exports): the
    // page's URL is "/name", as Cloudflare Pages redirects it.
    if (!rel.empty() && !s.find(rel) && s.find(rel + ".html")) {
      return {resolution::kind::redirect, nullptr, 308, "/" + rel};
    }
  } else {
    // The .html forms redirect to the clean URL that serves the same file.
    if (rel == "index.html" || rel.ends_with("/index.html")) {
      if (s.find(rel)) {
        return {resolution::kind::redirect, nullptr, 308,
                "/" + rel.substr(0, rel.size() - std::string_view("index.html").size())};
      }
    } else if (rel.ends_with(".html") && s.find(rel)) {
      std::string clean = rel.substr(0, rel.size() - 5);
      // Only when "/about" would come back to about.html (no file named "about" wins first).
      if (!s.find(clean)) {
        return {resolution::kind::redirect, nullptr, 308, "/" + clean};
      }
    }
    if (const site_file* f = s.find(rel)) {
      return {resolution::kind::file, f, 200, {}};
    }
    if (const site_file* f = s.find(rel + ".html")) {
      return {resolution::kind::file, f, 200, {}};
    }
    if (s.find(join(rel, "index.html"))) {
      return {resolution::kind::redirect, nullptr, 308, "/" + rel + "/"};
    }
  }
  size_t slash = rel.rfind('/');
  std::string_view last =
      slash == rel.npos ? std::string_view(rel) : std::string_view(rel).substr(slash + 1);
  bool asset = !p.dir && last.find('.') != last.npos;
  if (s.mode == proto::serve_mode::spa && !asset) {
    if (const site_file* f = s.find("index.html")) {
      return {resolution::kind::file, f, 200, {}};
    }
  }
  std::string_view dir =
      p.dir ? std::string_view(rel)
            : (slash == rel.npos ? std::string_view{} : std::string_view(rel).substr(0, slash));
  return not_found(s, dir);
}

bool etag_matches(std::string_view header, std::string_view etag) {
  auto opaque = [](std::string_view t) {
    if (t.size() >= 2 && (t[0] == 'W' || t[0] == 'w') && t[1] == '/') {
      t.remove_prefix(2);
    }
    return t;
  };
  bool match = false;
  for_each_item(header, [&](std::string_view item) {
    match = match || item == "*" || opaque(item) == opaque(etag);
  });
  return match;
}

std::optional<std::time_t> parse_http_date(std::string_view s) {
  std::string text(trim(s));
  std::tm t{};
  const char* end = ::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &t);
  if (end == nullptr || *end != '\0') {
    return std::nullopt;
  }
  return ::timegm(&t);
}

std::string format_http_date(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

range_result parse_range(std::string_view header, uint64_t size) {
  header = trim(header);
  if (header.size() < 6 || !iequals(header.substr(0, 6), "bytes=")) {
    return {};
  }
  std::string_view spec = trim(header.substr(6));
  // Several ranges would need multipart/byteranges: the whole file answers them (RFC 9110 allows
  // ignoring Range).
  if (spec.find(',') != spec.npos) {
    return {};
  }
  size_t dash = spec.find('-');
  if (dash == spec.npos) {
    return {};
  }
  std::string_view a = trim(spec.substr(0, dash));
  std::string_view b = trim(spec.substr(dash + 1));
  range_result unsatisfiable{range_result::kind::unsatisfiable};
  if (a.empty()) {
    uint64_t n = 0;
    if (!parse_u64(b, n)) {
      return {};
    }
    if (n == 0 || size == 0) {
      return unsatisfiable;
    }
    return {range_result::kind::partial, size - std::min(n, size), size - 1};
  }
  uint64_t first = 0;
  uint64_t last = 0;
  if (!parse_u64(a, first)) {
    return {};
  }
  if (b.empty()) {
    last = size == 0 ? 0 : size - 1;
  } else if (!parse_u64(b, last) || last < first) {
    return {};
  }
  if (first >= size) {
    return unsatisfiable;
  }
  return {range_result::kind::partial, first, std::min(last, size - 1)};
}

std::string_view negotiate_encoding(std::string_view accept, bool have_br, bool have_gzip) {
  double q_br = -1;
  double q_gzip = -1;
  double q_identity = -1;
  double q_star = -1;
  for_each_item(accept, [&](std::string_view item) {
    size_t semi = item.find(';');
    std::string_view coding = trim(item.substr(0, semi));
    double q = 1;
    if (semi != item.npos) {
      std::string_view params = trim(item.substr(semi + 1));
      if (params.size() >= 2 && lower(params[0]) == 'q' && params[1] == '=') {
        std::string_view v = trim(params.substr(2));
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), q);
        // A q-value we cannot read excludes the coding rather than guessing.
        if (ec != std::errc() || p != v.data() + v.size() || q < 0 || q > 1) {
          q = 0;
        }
      }
    }
    if (iequals(coding, "br")) {
      q_br = q;
    } else if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) {
      q_gzip = q;
    } else if (iequals(coding, "identity")) {
      q_identity = q;
    } else if (coding == "*") {
      q_star = q;
    }
  });
  // Unlisted codings take the '*' weight. An unlisted identity is acceptable but ranks below any
  // coding the client names (it only names what it wants); a listed identity competes by q.
  if (q_br < 0) {
    q_br = q_star < 0 ? 0 : q_star;
  }
  if (q_gzip < 0) {
    q_gzip = q_star < 0 ? 0 : q_star;
  }
  if (q_identity < 0) {
    q_identity = std::max(q_star, 0.001);
  }
  std::string_view best;
  double best_q = q_identity;
  if (have_gzip && q_gzip > 0 && q_gzip >= best_q) {
    best = "gzip";
    best_q = q_gzip;
  }
  if (have_br && q_br > 0 && q_br >= best_q) {
    best = "br";
  }
  return best;
}

representation choose_representation(const site_file& f, std::string_view accept_encoding) {
  representation r{&f, {}, f.br != nullptr || f.gzip != nullptr};
  if (r.vary) {
    r.coding = negotiate_encoding(accept_encoding, f.br != nullptr, f.gzip != nullptr);
    r.file = r.coding == "br" ? f.br : r.coding == "gzip" ? f.gzip : &f;
  }
  return r;
}

}  // namespace dp::proxy
