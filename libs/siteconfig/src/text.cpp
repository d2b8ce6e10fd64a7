// Small text helpers the parsers share.
#include <array>

#include "detail.hpp"
#include "dp/core/hex.hpp"

namespace dp::siteconfig::detail {

namespace {

char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t';
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (is_blank(s.front()) || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (is_blank(s.back()) || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_blank(line[i])) {
      ++i;
    }
    size_t start = i;
    while (i < line.size() && !is_blank(line[i])) {
      ++i;
    }
    if (i > start) {
      out.push_back(line.substr(start, i - start));
    }
  }
  return out;
}

std::string_view strip_bom(std::string_view text) noexcept {
  if (text.starts_with("\xEF\xBB\xBF")) {
    text.remove_prefix(3);
  }
  return text;
}

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (line.ends_with('\r')) {
      line.remove_suffix(1);
    }
    out.push_back(line);
    if (nl == std::string_view::npos) {
      break;
    }
    text.remove_prefix(nl + 1);
  }
  return out;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) {
      return std::nullopt;
    }
    int hi = hex_value(s[i + 1]);
    int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

void append_encoded(std::string& out, std::string_view s) {
  static constexpr std::string_view keep = "-._~!$&'()*+,;=:@/";
  static constexpr char digits[] = "0123456789ABCDEF";
  for (char c : s) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum || keep.find(c) != std::string_view::npos) {
      out.push_back(c);
    } else {
      auto u = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(digits[u >> 4]);
      out.push_back(digits[u & 15]);
    }
  }
}

bool is_external(std::string_view d) noexcept {
  if (d.starts_with("//") || d.starts_with("\\")) {
    return true;
  }
  // A scheme: letters, digits, '+', '-', '.' before the first ':' (RFC 3986), before any '/'.
  size_t colon = d.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return false;
  }
  for (size_t i = 0; i < colon; ++i) {
    char c = d[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
    if (!ok) {
      return false;
    }
  }
  return true;
}

bool is_token(std::string_view s) noexcept {
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && extra.find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

bool is_printable(std::string_view s) noexcept {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      return false;
    }
  }
  return true;
}

bool is_forbidden_header(std::string_view name) noexcept {
  // Connection-level (RFC 9110 7.6.1 and the ones HTTP/2 forbids), message framing, and what the
  // proxy computes per response (encoding, range, validators, authentication challenges).
  static constexpr std::array<std::string_view, 19> forbidden = {
      "Connection",
      "Keep-Alive",
      "Proxy-Connection",
      "Transfer-Encoding",
      "TE",
      "Trailer",
      "Upgrade",
      "Host",
      "Content-Length",
      "Content-Encoding",
      "Content-Range",
      "HTTP2-Settings",
      "Proxy-Authenticate",
      "Proxy-Authorization",
      "Authorization",
      "WWW-Authenticate",
      "ETag",
      "Last-Modified",
      "Date",
  };
  for (auto f : forbidden) {
    if (iequals(name, f)) {
      return true;
    }
  }
  return false;
}

void diagnostics::warn(unsigned line, std::string message) const {
  out.push_back(
      diagnostic{std::string(file), line, std::move(message), diagnostic::severity::warning});
}

void diagnostics::error(unsigned line, std::string message) const {
  out.push_back(
      diagnostic{std::string(file), line, std::move(message), diagnostic::severity::error});
}

}  // namespace dp::siteconfig::detail
