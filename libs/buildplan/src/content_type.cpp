#include "dp/buildplan/content_type.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace dp::buildplan {
namespace {

// Sorted by extension for binary search.
constexpr std::pair<std::string_view, std::string_view> types[] = {
    {"aac", "audio/aac"},
    {"apng", "image/apng"},
    {"atom", "application/atom+xml; charset=utf-8"},
    {"avif", "image/avif"},
    {"bin", "application/octet-stream"},
    {"bmp", "image/bmp"},
    {"br", "application/x-brotli"},
    {"cjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"eot", "application/vnd.ms-fontobject"},
    {"flac", "audio/flac"},
    {"gif", "image/gif"},
    {"gz", "application/gzip"},
    {"htm", "text/html; charset=utf-8"},
    {"html", "text/html; charset=utf-8"},
    {"ico", "image/x-icon"},
    {"ics", "text/calendar; charset=utf-8"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"js", "text/javascript; charset=utf-8"},
    {"json", "application/json; charset=utf-8"},
    {"jsonld", "application/ld+json; charset=utf-8"},
    {"m4a", "audio/mp4"},
    {"map", "application/json; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"mov", "video/quicktime"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"oga", "audio/ogg"},
    {"ogg", "audio/ogg"},
    {"ogv", "video/ogg"},
    {"opus", "audio/ogg"},
    {"otf", "font/otf"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"rss", "application/rss+xml; charset=utf-8"},
    {"svg", "image/svg+xml; charset=utf-8"},
    {"tar", "application/x-tar"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"ts", "video/mp2t"},
    {"ttf", "font/ttf"},
    {"txt", "text/plain; charset=utf-8"},
    {"vtt", "text/vtt; charset=utf-8"},
    {"wasm", "application/wasm"},
    {"wav", "audio/wav"},
    {"weba", "audio/webm"},
    {"webm", "video/webm"},
    {"webmanifest", "application/manifest+json; charset=utf-8"},
    {"webp", "image/webp"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"xhtml", "application/xhtml+xml; charset=utf-8"},
    {"xml", "application/xml; charset=utf-8"},
    {"yaml", "text/yaml; charset=utf-8"},
    {"yml", "text/yaml; charset=utf-8"},
    {"zip", "application/zip"},
};

constexpr std::string_view octet_stream = "application/octet-stream";

std::string_view basename(std::string_view path) {
  auto slash = path.find_last_of('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// 8+ lowercase hex characters with both a digit and a letter (so neither "20240101" nor
// "deadbeef"-like words qualify).
bool is_hex_hash(std::string_view s) {
  if (s.size() < 8) {
    return false;
  }
  bool digit = false, letter = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c >= 'a' && c <= 'f') {
      letter = true;
    } else {
      return false;
    }
  }
  return digit && letter;
}

// Rollup/Vite's 8 base64url characters. A random one almost always mixes cases with a digit,
// a '_' or '-', or many capitals; words (MyWidget, version2, about_us) do not.
bool is_base64_hash(std::string_view s) {
  if (s.size() != 8) {
    return false;
  }
  int digit = 0, upper = 0, lower = 0, symbol = 0;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      ++digit;
    } else if (c >= 'A' && c <= 'Z') {
      ++upper;
    } else if (c >= 'a' && c <= 'z') {
      ++lower;
    } else if (c == '_' || c == '-') {
      ++symbol;
    } else {
      return false;
    }
  }
  return upper >= 1 && lower >= 1 && (digit >= 1 || symbol >= 1 || upper >= 3);
}

bool is_hash(std::string_view s) {
  return is_hex_hash(s) || is_base64_hash(s);
}

}  // namespace

std::string_view content_type(std::string_view path) noexcept {
  auto name = basename(path);
  auto dot = name.find_last_of('.');
  if (dot == std::string_view::npos || name.size() - dot - 1 > 16) {
    return octet_stream;
  }
  std::array<char, 16> buf{};
  auto ext = name.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), buf.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string_view lower(buf.data(), ext.size());
  auto it = std::lower_bound(std::begin(types), std::end(types), lower,
                             [](const auto& entry, std::string_view e) { return entry.first < e; });
  return it != std::end(types) && it->first == lower ? it->second : octet_stream;
}

bool is_fingerprinted(std::string_view path) noexcept {
  if (content_type(path).starts_with("text/html")) {
    return false;
  }
  // Next.js puts only content-addressed files under _next/static (and serves them immutable).
  if (path.starts_with("_next/static/") || path.find("/_next/static/") != std::string_view::npos) {
    return true;
  }
  auto name = basename(path);
  auto dot = name.find_last_of('.');
  if (dot == std::string_view::npos || dot == 0) {
    return false;
  }
  // Every '.'-separated part of the stem: main.3e1f9a7c.chunk.js has its hash in the middle.
  for (std::string_view rest = name.substr(0, dot); !rest.empty();) {
    auto next = rest.find('.');
    auto token = rest.substr(0, next);
    rest.remove_prefix(next == std::string_view::npos ? rest.size() : next + 1);
    auto dash = token.find_last_of('-');
    // The whole part (3e1f9a7c.css, BqXx1t_a.js), the last 8 after a '-' (Vite's hash may itself
    // contain '-': vendor-C-Tq2Ls9.js), or a long hex suffix after the last '-'.
    if ((dash == std::string_view::npos && is_hash(token)) ||
        (token.size() > 8 && token[token.size() - 9] == '-' &&
         is_hash(token.substr(token.size() - 8))) ||
        (dash != std::string_view::npos && is_hex_hash(token.substr(dash + 1)))) {
      return true;
    }
  }
  return false;
}

std::string_view cache_control(std::string_view path) noexcept {
  return is_fingerprinted(path) ? cache_immutable : cache_revalidate;
}

}  // namespace dp::buildplan
