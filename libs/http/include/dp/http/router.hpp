// Method + path-pattern routing. Patterns are literal segments and `{name}` parameters
// ("/v1/deployments/{id}/logs/stream"); a fallback handler takes whatever matches no route
// (the proxy routes by Host). Matching is a linear scan: services have a few dozen routes.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dp/http/message.hpp"

namespace dp::http {

using handler = std::function<boost::asio::awaitable<response>(request&)>;

struct route_options {
  std::optional<size_t> body_limit;  // overrides server_options::body_limit for this route
  // Looks at a request's head before its body is read (body() is still empty): a response
  // refuses the request and the body is never read (a 401 before a 100 MiB upload, not after).
  std::function<std::optional<response>(const request&)> admit;
};

class router {
 public:
  // HEAD requests are routed to GET handlers (the server sends no body).
  void add(method m, std::string_view pattern, handler h, route_options o = {});
  void get(std::string_view p, handler h, route_options o = {}) {
    add(method::get, p, std::move(h), o);
  }
  void post(std::string_view p, handler h, route_options o = {}) {
    add(method::post, p, std::move(h), o);
  }
  void put(std::string_view p, handler h, route_options o = {}) {
    add(method::put, p, std::move(h), o);
  }
  void patch(std::string_view p, handler h, route_options o = {}) {
    add(method::patch, p, std::move(h), o);
  }
  void del(std::string_view p, handler h, route_options o = {}) {
    add(method::delete_, p, std::move(h), o);
  }
  // Handles every request no route matched (instead of 404/405).
  void fallback(handler h, route_options o = {});

  struct match_result {
    const handler* target = nullptr;  // null: no handler (see allow)
    const route_options* options = nullptr;
    std::string allow;  // when the path matched routes of other methods: "GET, HEAD, POST"
  };
  // `params` receives the decoded path parameters of the matched route.
  match_result match(method m, std::string_view path,
                     std::vector<std::pair<std::string_view, std::string>>& params) const;

 private:
  struct segment {
    std::string text;
    bool param = false;
  };
  struct route {
    method verb;
    std::vector<segment> segments;
    handler h;
    route_options options;
  };
  static bool match_route(const route& r, std::string_view path,
                          std::vector<std::pair<std::string_view, std::string>>* params);

  std::vector<route> routes_;
  std::optional<std::pair<handler, route_options>> fallback_;
};

// Percent-decoding; '+' becomes a space when `plus_as_space` (query strings). A malformed
// escape ("%zz", a trailing '%') is kept literally.
std::string percent_decode(std::string_view s, bool plus_as_space = false);
// "a=1&b=x%20y&c" -> {{"a","1"},{"b","x y"},{"c",""}}; empty pieces are skipped.
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query);

}  // namespace dp::http
