// What keeps a web page in the user's browser from driving the API (CSRF, cross-site WebSocket
// hijacking, DNS rebinding). Pure functions of a request's headers, so the rules are unit-tested
// without a server; service.cpp applies them to every authenticated route.
//
// - A page can send a cross-site POST whose Content-Type is text/plain, a form's, or none, with
//   no CORS preflight: a body must be JSON (or the upload's tar.gz where the route takes one).
// - Browsers send Origin on every cross-site POST and on every WebSocket handshake (WebSocket
//   has no CORS): a present Origin must be the API's own (the dashboard is served by the
//   api-server itself) or configured (API_ALLOWED_ORIGINS).
// - DNS rebinding makes the attacker's host name resolve to 127.0.0.1, so that the page is
//   same-origin with a loopback API: in local mode (no token to steal) Host must be a name of
//   this machine: localhost, an IP address (which no DNS answer can rebind), or API_HOSTS.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dp::api {

// The media type of a Content-Type value, lowercase, without parameters ("; charset=utf-8").
std::string media_type(std::string_view content_type);
bool is_json_type(std::string_view content_type);
bool is_archive_type(std::string_view content_type);  // application/gzip, application/x-gzip

// "localhost:9000" -> "localhost", "[::1]:9000" -> "::1" (lowercase); nullopt when malformed.
std::optional<std::string> host_name(std::string_view host);

// Local mode: whether `host` (a Host header) names this machine: localhost, any IP address, or
// one of `extra` (names, compared without their port).
bool is_local_host(std::string_view host, const std::vector<std::string>& extra);

// Whether a request carrying `origin` comes from a page the API trusts: the request's own origin
// (`host` is its Host header; the scheme may be http or https, since a TLS proxy in front
// changes it), or one of `allowed` ("https://dash.example.com", compared case-insensitively).
// "null" and anything that is not scheme://host[:port] are foreign.
bool is_allowed_origin(std::string_view origin, std::optional<std::string_view> host,
                       const std::vector<std::string>& allowed);

}  // namespace dp::api
