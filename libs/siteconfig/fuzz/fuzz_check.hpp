// What every siteconfig fuzz target checks after compiling its input: the compiled form reads
// back to the same text, and matching arbitrary paths neither crashes nor produces a Location or
// header value with a control character.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dp/siteconfig/siteconfig.hpp"

namespace dp::siteconfig::fuzz {

inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "siteconfig fuzz: %s\n", what);
    std::abort();
  }
}

inline bool clean(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') {
      return false;
    }
  }
  return true;
}

inline void check(const compiled& c, std::string_view input) {
  std::string text = to_json(c.rules);
  auto back = parse_rule_set(text);
  require(back.has_value(), back ? "" : back.error().message.c_str());
  require(to_json(*back) == text, "the JSON form does not read back to the same text");
  // Paths: a few fixed ones and each of the input's first lines' words that start with '/'.
  std::vector<std::string> paths = {"/", "/a", "/a/", "/a/b/c", "/index.html", "/x.jpg"};
  size_t start = 0;
  for (int n = 0; n < 8 && start < input.size(); ++n) {
    size_t end = input.find_first_of(" \t\r\n\"", start);
    std::string_view word =
        input.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    // Only paths the proxy can pass on: its decode_path refuses NUL and control characters.
    if (word.starts_with('/') && std::none_of(word.begin(), word.end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        })) {
      paths.emplace_back(word);
    }
    if (end == std::string_view::npos) {
      break;
    }
    start = end + 1;
  }
  std::vector<header_field> headers;
  std::vector<std::string_view> removed;
  for (const auto& p : paths) {
    for (bool file : {false, true}) {
      outcome o = match(*back, p, "q=1", file);
      if (o.type == outcome::kind::redirect) {
        require(clean(o.location), "a control character in a Location");
        require(o.status >= 301 && o.status <= 308, "a redirect status out of range");
      }
    }
    headers_for(*back, p, headers, &removed);
    for (const auto& h : headers) {
      require(clean(h.value) && !h.name.empty(),
              "an empty header name or a control character in a value");
    }
    protection_for(*back, p);
  }
}

}  // namespace dp::siteconfig::fuzz
