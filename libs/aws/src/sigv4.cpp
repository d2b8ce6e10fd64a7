#include "dp/aws/sigv4.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

#include "dp/aws/crypto.hpp"

namespace dp::aws {
namespace {

constexpr std::string_view algorithm = "AWS4-HMAC-SHA256";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

// Trim and collapse runs of spaces, as the canonical header value requires.
std::string canonical_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) {
      out.push_back(' ');
      space = false;
    }
    out.push_back(c);
  }
  return out;
}

// RFC 3986 dot-segment removal plus merging of empty segments ("//"), as the test suite's
// normalize-path cases expect for non-S3 services.
std::string normalize_path(std::string_view path) {
  std::vector<std::string_view> segs;
  bool trailing = false;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) {
      j = path.size();
    }
    std::string_view seg = path.substr(i, j - i);
    trailing = seg.empty() || seg == "." || seg == "..";
    if (seg == "..") {
      if (!segs.empty()) {
        segs.pop_back();
      }
    } else if (!seg.empty() && seg != ".") {
      segs.push_back(seg);
    }
    i = j + 1;
  }
  std::string out = "/";
  for (size_t k = 0; k < segs.size(); ++k) {
    out.append(segs[k]);
    if (k + 1 < segs.size() || trailing) {
      out.push_back('/');
    }
  }
  return out;
}

std::string canonical_uri(const request& req) {
  switch (req.style) {
    case uri_style::s3:
      return uri_encode(req.path.empty() ? "/" : req.path, false);
    case uri_style::s3_encoded:
      return std::string(req.path.empty() ? "/" : req.path);
    case uri_style::standard:
      break;
  }
  return uri_encode(normalize_path(req.path), false);
}

std::string canonical_query(const query_list& query) {
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(query.size());
  for (const auto& [k, v] : query) {
    enc.emplace_back(uri_encode(k, true), uri_encode(v, true));
  }
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) {
      out.push_back('&');
    }
    out.append(k).append("=").append(v);
  }
  return out;
}

bool has_header(const header_list& h, std::string_view name) {
  return std::any_of(h.begin(), h.end(), [&](const auto& p) { return lower(p.first) == name; });
}

struct canonical_headers {
  std::string text;     // "name:value\n" lines
  std::string signed_;  // "a;b;c"
};

canonical_headers canonicalize(const header_list& headers) {
  // Stable sort by lowercase name keeps duplicate headers in their original order.
  std::vector<std::pair<std::string, std::string>> h;
  h.reserve(headers.size());
  for (const auto& [k, v] : headers) {
    h.emplace_back(lower(k), canonical_value(v));
  }
  std::stable_sort(h.begin(), h.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  canonical_headers out;
  for (size_t i = 0; i < h.size(); ++i) {
    if (i > 0 && h[i].first == h[i - 1].first) {
      out.text.back() = ',';
      out.text.append(h[i].second).push_back('\n');
      continue;
    }
    if (!out.signed_.empty()) {
      out.signed_.push_back(';');
    }
    out.signed_.append(h[i].first);
    out.text.append(h[i].first).append(":").append(h[i].second).push_back('\n');
  }
  return out;
}

std::string signing_key(const credentials& creds, std::string_view date, const scope& sc) {
  auto k = hmac_sha256("AWS4" + creds.secret_key, date);
  auto as_sv = [](const digest& d) {
    return std::string_view(reinterpret_cast<const char*>(d.data()), d.size());
  };
  k = hmac_sha256(as_sv(k), sc.region);
  k = hmac_sha256(as_sv(k), sc.service);
  k = hmac_sha256(as_sv(k), "aws4_request");
  return std::string(as_sv(k));
}

// The shared core: canonical request, string to sign, signature.
void finish(signature& out, const request& req, const header_list& headers, const query_list& query,
            std::string_view payload_hash, const credentials& creds, const scope& sc,
            std::string_view date_time, std::string& signed_headers) {
  out.canonical_uri = canonical_uri(req);
  out.canonical_query = canonical_query(query);
  auto ch = canonicalize(headers);
  signed_headers = ch.signed_;
  out.canonical_request = fmt::format("{}\n{}\n{}\n{}\n{}\n{}", req.method, out.canonical_uri,
                                      out.canonical_query, ch.text, ch.signed_, payload_hash);
  std::string_view date = date_time.substr(0, 8);
  out.string_to_sign = fmt::format("{}\n{}\n{}/{}/{}/aws4_request\n{}", algorithm, date_time, date,
                                   sc.region, sc.service, sha256_hex(out.canonical_request));
  out.signature = hex(hmac_sha256(signing_key(creds, date, sc), out.string_to_sign));
}

}  // namespace

std::string uri_encode(std::string_view s, bool encode_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || (c == '/' && !encode_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 0xf]);
    }
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[17];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

signature sign(const request& req, const credentials& creds, const scope& sc) {
  signature out;
  std::string date_time = amz_date(sc.time);
  header_list headers = req.headers;
  // Headers the signer owns are signed too, unless the caller already set them.
  if (!has_header(headers, "x-amz-date")) {
    out.headers_to_add.emplace_back("x-amz-date", date_time);
  }
  if (!creds.session_token.empty() && !has_header(headers, "x-amz-security-token")) {
    out.headers_to_add.emplace_back("x-amz-security-token", creds.session_token);
  }
  if (sc.service == "s3" && !has_header(headers, "x-amz-content-sha256")) {
    out.headers_to_add.emplace_back("x-amz-content-sha256", std::string(req.payload_hash));
  }
  headers.insert(headers.end(), out.headers_to_add.begin(), out.headers_to_add.end());
  std::string signed_headers;
  finish(out, req, headers, req.query, req.payload_hash, creds, sc, date_time, signed_headers);
  out.authorization =
      fmt::format("{} Credential={}/{}/{}/{}/aws4_request, SignedHeaders={}, Signature={}",
                  algorithm, creds.access_key, date_time.substr(0, 8), sc.region, sc.service,
                  signed_headers, out.signature);
  out.headers_to_add.emplace(out.headers_to_add.begin(), "authorization", out.authorization);
  return out;
}

signature presign(const request& req, const credentials& creds, const scope& sc,
                  std::chrono::seconds expires) {
  signature out;
  std::string date_time = amz_date(sc.time);
  query_list query = req.query;
  std::string signed_headers = canonicalize(req.headers).signed_;
  query.emplace_back("X-Amz-Algorithm", std::string(algorithm));
  query.emplace_back("X-Amz-Credential",
                     fmt::format("{}/{}/{}/{}/aws4_request", creds.access_key,
                                 date_time.substr(0, 8), sc.region, sc.service));
  query.emplace_back("X-Amz-Date", date_time);
  query.emplace_back("X-Amz-Expires", std::to_string(expires.count()));
  if (!creds.session_token.empty()) {
    query.emplace_back("X-Amz-Security-Token", creds.session_token);
  }
  query.emplace_back("X-Amz-SignedHeaders", signed_headers);
  finish(out, req, req.headers, query, unsigned_payload, creds, sc, date_time, signed_headers);
  out.canonical_query.append("&X-Amz-Signature=").append(out.signature);
  return out;
}

result<credentials> credentials_from(const dp::config::environment& env) {
  auto get = [&](std::string_view name) -> std::string {
    auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  };
  credentials c{get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY"), get("AWS_SESSION_TOKEN"),
                get("AWS_REGION")};
  if (c.region.empty()) {
    c.region = get("AWS_DEFAULT_REGION");
  }
  if (c.access_key.empty() != c.secret_key.empty()) {
    return make_error(errc::invalid_argument,
                      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
  }
  if (!c.session_token.empty() && c.access_key.empty()) {
    return make_error(errc::invalid_argument,
                      "AWS_SESSION_TOKEN needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  }
  return c;
}

}  // namespace dp::aws
