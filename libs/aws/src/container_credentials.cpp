#include "dp/aws/container_credentials.hpp"

#include <boost/json.hpp>

#include "dp/http_client/client.hpp"
#include "utc_time.hpp"

namespace dp::aws {

namespace json = boost::json;

dp::result<std::pair<credentials, std::chrono::system_clock::time_point>>
parse_container_credentials(std::string_view body, std::string region) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    return make_error(errc::invalid_argument, "container credentials: the answer is not JSON");
  }
  const auto& o = v.get_object();
  auto field = [&](std::string_view name) -> std::string {
    const auto* f = o.if_contains(name);
    return f && f->is_string() ? std::string(f->get_string()) : std::string();
  };
  credentials c{field("AccessKeyId"), field("SecretAccessKey"), field("Token"), std::move(region)};
  if (c.access_key.empty() || c.secret_key.empty()) {
    return make_error(errc::invalid_argument,
                      "container credentials: AccessKeyId or SecretAccessKey missing");
  }
  auto expires = parse_utc(field("Expiration"));
  if (!expires) {
    return make_error(errc::invalid_argument, "container credentials: bad Expiration");
  }
  return std::pair{std::move(c), *expires};
}

boost::asio::awaitable<dp::result<credentials>> credential_source::get(
    dp::http_client::client& http) {
  if (!endpoint_) {
    co_return current_;
  }
  auto now = std::chrono::system_clock::now();
  if (current_.has_keys() && now < expires_ - std::chrono::minutes(5)) {
    co_return current_;
  }
  dp::http_client::request req;
  req.url = endpoint_->url;
  req.timeout = std::chrono::milliseconds(5000);
  if (!endpoint_->authorization.empty()) {
    req.headers.emplace_back("Authorization", endpoint_->authorization);
  }
  auto r = co_await http.send(std::move(req));
  if (!r) {
    co_return make_error(errc::unavailable, "container credentials: {}", r.error().message);
  }
  if (r->status != 200) {
    co_return make_error(errc::unavailable, "container credentials: HTTP {}", r->status);
  }
  auto parsed = parse_container_credentials(r->body, current_.region);
  if (!parsed) {
    co_return parsed.error();
  }
  current_ = std::move(parsed->first);
  expires_ = parsed->second;
  co_return current_;
}

}  // namespace dp::aws
