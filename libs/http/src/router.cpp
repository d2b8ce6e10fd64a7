#include "dp/http/router.hpp"

#include <stdexcept>

#include "dp/core/hex.hpp"

namespace dp::http {
namespace {

// The next '/'-separated segment of `path` starting at `pos` (which is just after a '/').
std::string_view next_segment(std::string_view path, size_t& pos) noexcept {
  size_t end = path.find('/', pos);
  if (end == std::string_view::npos) {
    end = path.size();
  }
  std::string_view seg = path.substr(pos, end - pos);
  pos = end + 1;
  return seg;
}

}  // namespace

std::string percent_decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_as_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (piece.empty()) {
      continue;
    }
    size_t eq = piece.find('=');
    if (eq == std::string_view::npos) {
      out.emplace_back(percent_decode(piece, true), std::string{});
    } else {
      out.emplace_back(percent_decode(piece.substr(0, eq), true),
                       percent_decode(piece.substr(eq + 1), true));
    }
  }
  return out;
}

void router::add(method m, std::string_view pattern, handler h, route_options o) {
  // A malformed pattern is a programming error found at start-up, not a runtime condition.
  if (pattern.empty() || pattern.front() != '/') {
    throw std::invalid_argument("route pattern must start with '/': " + std::string(pattern));
  }
  route r{m, {}, std::move(h), o};
  size_t pos = 1;
  while (pos <= pattern.size()) {
    std::string_view seg = next_segment(pattern, pos);
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
      r.segments.push_back({std::string(seg.substr(1, seg.size() - 2)), true});
    } else {
      r.segments.push_back({std::string(seg), false});
    }
  }
  routes_.push_back(std::move(r));
}

void router::fallback(handler h, route_options o) {
  fallback_.emplace(std::move(h), o);
}

bool router::match_route(const route& r, std::string_view path,
                         std::vector<std::pair<std::string_view, std::string>>* params) {
  if (path.empty() || path.front() != '/') {
    return false;
  }
  size_t pos = 1;
  for (const segment& s : r.segments) {
    if (pos > path.size()) {
      return false;
    }
    std::string_view seg = next_segment(path, pos);
    if (s.param) {
      // An empty parameter never matches: "/v1/projects/" is not "/v1/projects/{name}".
      if (seg.empty()) {
        return false;
      }
      if (params) {
        params->emplace_back(s.text, percent_decode(seg));
      }
    } else if (seg != s.text) {
      return false;
    }
  }
  return pos > path.size();
}

router::match_result router::match(
    method m, std::string_view path,
    std::vector<std::pair<std::string_view, std::string>>& params) const {
  match_result res;
  bool allow_get = false;
  uint32_t allowed = 0;
  for (const route& r : routes_) {
    bool same_method = r.verb == m || (m == method::head && r.verb == method::get);
    if (same_method) {
      params.clear();
      if (match_route(r, path, &params)) {
        res.target = &r.h;
        res.options = &r.options;
        return res;
      }
    } else if (match_route(r, path, nullptr)) {
      allowed |= 1u << static_cast<unsigned>(r.verb);
      allow_get = allow_get || r.verb == method::get;
    }
  }
  params.clear();
  if (fallback_) {
    res.target = &fallback_->first;
    res.options = &fallback_->second;
    return res;
  }
  // The Allow list in a fixed order; HEAD goes with GET.
  for (auto v : {method::get, method::head, method::post, method::put, method::patch,
                 method::delete_, method::options}) {
    if ((allowed & (1u << static_cast<unsigned>(v))) || (v == method::head && allow_get)) {
      if (!res.allow.empty()) {
        res.allow += ", ";
      }
      res.allow += to_string(v);
    }
  }
  return res;
}

}  // namespace dp::http
