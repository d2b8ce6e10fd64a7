#include "dp/api/browser.hpp"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cstdint>

namespace dp::api {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

struct authority {
  std::string name;              // lowercase, IPv6 without brackets
  std::optional<uint32_t> port;  // absent: the scheme's default
};

// host[:port] or [v6][:port], as in Host and in an origin.
std::optional<authority> parse_authority(std::string_view s) {
  authority a;
  std::string_view rest;
  if (s.starts_with('[')) {
    auto close = s.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    a.name = lower(s.substr(1, close - 1));
    rest = s.substr(close + 1);
  } else {
    auto colon = s.find(':');
    a.name = lower(s.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : s.substr(colon);
  }
  if (a.name.empty()) {
    return std::nullopt;
  }
  if (!rest.empty()) {
    if (rest.front() != ':' || rest.size() < 2 || rest.size() > 6) {
      return std::nullopt;
    }
    uint32_t port = 0;
    for (char c : rest.substr(1)) {
      if (c < '0' || c > '9') {
        return std::nullopt;
      }
      port = port * 10 + static_cast<uint32_t>(c - '0');
    }
    a.port = port;
  }
  for (char c : a.name) {
    // Letters, digits, '-', '.', and ':' inside IPv6 brackets: nothing that could hide a path.
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              (c == ':' && s.starts_with('['));
    if (!ok) {
      return std::nullopt;
    }
  }
  return a;
}

}  // namespace

std::string media_type(std::string_view content_type) {
  return lower(trim(content_type.substr(0, content_type.find(';'))));
}

bool is_json_type(std::string_view content_type) {
  return media_type(content_type) == "application/json";
}

bool is_archive_type(std::string_view content_type) {
  auto t = media_type(content_type);
  return t == "application/gzip" || t == "application/x-gzip";
}

std::optional<std::string> host_name(std::string_view host) {
  auto a = parse_authority(host);
  if (!a) {
    return std::nullopt;
  }
  return std::move(a->name);
}

bool is_local_host(std::string_view host, const std::vector<std::string>& extra) {
  auto name = host_name(host);
  if (!name) {
    return false;
  }
  // A DNS answer can rebind a name, never an address literal.
  boost::system::error_code ec;
  boost::asio::ip::make_address(*name, ec);
  if (!ec || *name == "localhost") {
    return true;
  }
  return std::any_of(extra.begin(), extra.end(), [&](const std::string& e) {
    auto allowed = host_name(e);
    return allowed && *allowed == *name;
  });
}

bool is_allowed_origin(std::string_view origin, std::optional<std::string_view> host,
                       const std::vector<std::string>& allowed) {
  auto o = lower(trim(origin));
  for (const auto& a : allowed) {
    auto entry = lower(trim(a));
    while (entry.ends_with('/')) {
      entry.pop_back();
    }
    if (!entry.empty() && entry == o) {
      return true;
    }
  }
  if (!host) {
    return false;
  }
  uint32_t default_port = 0;
  std::string_view rest = o;
  if (rest.starts_with("http://")) {
    default_port = 80;
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    default_port = 443;
    rest.remove_prefix(8);
  } else {
    return false;  // "null", file:, extensions: never the API's own page
  }
  auto from = parse_authority(rest);
  auto to = parse_authority(*host);
  return from && to && from->name == to->name &&
         from->port.value_or(default_port) == to->port.value_or(default_port);
}

}  // namespace dp::api
