#include "api_client.hpp"

#include <boost/json/parse.hpp>

#include "dp/core/errc_table.hpp"
#include "dp/proto/json.hpp"

namespace dp::cli {

namespace json = boost::json;

namespace {

dp::error transport_error(const dp::error& e, const std::string& api_url) {
  // Keep the errc (unavailable or timeout): it decides exit code 3.
  return dp::error{e.code, fmt::format("cannot reach the API at {}: {}", api_url, e.message)};
}

// An API error's errc: by the word in its body, else by the HTTP status, among the client errors
// of dp::errc_table (the api-server's own); anything else is the API misbehaving.
errc errc_for(std::string_view code, int status) {
  auto client_error = [](const errc_info& row) {
    return row.http_status >= 400 && row.http_status < 500;
  };
  for (const auto& row : errc_table) {
    if (client_error(row) && row.name == code) {
      return row.code;
    }
  }
  for (const auto& row : errc_table) {
    if (client_error(row) && static_cast<int>(row.http_status) == status) {
      return row.code;
    }
  }
  return errc::protocol;
}

}  // namespace

std::string encode_component(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

dp::error api_error(int status, std::string_view body) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    const auto* e = v.as_object().if_contains("error");
    if (e && e->is_object()) {
      const auto* code = e->as_object().if_contains("code");
      const auto* message = e->as_object().if_contains("message");
      if (code && code->is_string() && message && message->is_string()) {
        return dp::make_error(errc_for(code->get_string(), status),
                              std::string(message->get_string()));
      }
    }
  }
  return dp::make_error(errc_for("", status), "the API answered HTTP {}", status);
}

dp::result<deployment_view> parse_deployment_view(const json::value& v) {
  auto d = proto::parse_deployment(v);
  if (!d) {
    return dp::make_error(errc::protocol, "unexpected deployment from the API: {}",
                          d.error().message);
  }
  deployment_view out{.d = std::move(*d)};
  const auto& o = v.as_object();
  if (const auto* u = o.if_contains("url"); u && u->is_string()) {
    out.url = std::string(u->get_string());
  }
  if (const auto* u = o.if_contains("alias_url"); u && u->is_string()) {
    out.alias_url = std::string(u->get_string());
  }
  if (const auto* a = o.if_contains("preview_urls"); a && a->is_array()) {
    for (const auto& u : a->get_array()) {
      if (u.is_string()) {
        out.preview_urls.emplace_back(u.get_string());
      }
    }
  }
  return out;
}

api_client::api_client(http_client::client& http, const options& opts) : http_(http), opts_(opts) {}

http_client::request api_client::make(std::string method, std::string path) const {
  http_client::request r;
  r.method = std::move(method);
  std::string_view base = opts_.api_url;
  while (base.ends_with('/')) {
    base.remove_suffix(1);
  }
  r.url = std::string(base) + path;
  r.timeout = opts_.request_timeout;
  r.headers.emplace_back("accept", "application/json");
  if (!opts_.token.empty()) {
    r.headers.emplace_back("authorization", "Bearer " + opts_.token);
  }
  return r;
}

dp::result<json::value> api_client::decode(const http_client::response& r) const {
  if (r.status >= 400) {
    return api_error(r.status, r.body);
  }
  if (r.status == 204) {
    return json::value();
  }
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) {
    return dp::make_error(errc::protocol, "the API answered HTTP {} with a body that is not JSON",
                          r.status);
  }
  return v;
}

boost::asio::awaitable<dp::result<json::value>> api_client::call(std::string method,
                                                                 std::string path,
                                                                 std::string body) {
  auto req = make(std::move(method), std::move(path));
  if (!body.empty()) {
    req.headers.emplace_back("content-type", "application/json");
    req.body = std::move(body);
  }
  auto r = co_await http_.send(std::move(req));
  if (!r) {
    co_return transport_error(r.error(), opts_.api_url);
  }
  co_return decode(*r);
}

boost::asio::awaitable<dp::result<json::value>> api_client::upload(std::string project,
                                                                   std::filesystem::path archive,
                                                                   bool no_cache) {
  auto req = make("POST", "/v1/deployments?trigger=cli&project=" + encode_component(project) +
                              (no_cache ? "&no_cache=true" : ""));
  req.headers.emplace_back("content-type", "application/gzip");
  req.body = http_client::file_region{.path = std::move(archive)};
  // An upload of up to SOURCE_MAX_MB takes longer than a JSON call.
  req.timeout = std::max(opts_.request_timeout, std::chrono::milliseconds(600'000));
  auto r = co_await http_.send(std::move(req));
  if (!r) {
    co_return transport_error(r.error(), opts_.api_url);
  }
  co_return decode(*r);
}

boost::asio::awaitable<dp::result<http_client::response_stream>> api_client::open_logs(
    std::string id, int64_t last_seq) {
  auto req = make("GET", "/v1/deployments/" + encode_component(id) + "/logs/stream");
  req.headers.front() = {"accept", "text/event-stream"};
  if (last_seq > 0) {
    req.headers.emplace_back("last-event-id", std::to_string(last_seq));
  }
  // Bounds the wait for the headers and any silence: the server sends a comment every 15 s.
  req.timeout = std::max(opts_.request_timeout, std::chrono::milliseconds(45'000));
  auto r = co_await http_.open(std::move(req));
  if (!r) {
    co_return transport_error(r.error(), opts_.api_url);
  }
  co_return std::move(*r);
}

}  // namespace dp::cli
