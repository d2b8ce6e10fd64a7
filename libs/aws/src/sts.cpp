#include "dp/aws/sts.hpp"

#include <boost/url/parse.hpp>

#include <fmt/format.h>

#include "dp/aws/crypto.hpp"
#include "dp/http_client/client.hpp"
#include "utc_time.hpp"

namespace dp::aws {
namespace {

// The text of the first <tag>...</tag> inside `xml` (namespaces and attributes of the tag are not
// used by STS), with the five predefined entities decoded; nullopt when there is none.
std::optional<std::string> element(std::string_view xml, std::string_view tag) {
  auto open = fmt::format("<{}>", tag);
  auto begin = xml.find(open);
  if (begin == std::string_view::npos) {
    return std::nullopt;
  }
  begin += open.size();
  auto end = xml.find(fmt::format("</{}>", tag), begin);
  if (end == std::string_view::npos) {
    return std::nullopt;
  }
  auto raw = xml.substr(begin, end - begin);
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '&') {
      out += raw[i];
      continue;
    }
    static constexpr std::pair<std::string_view, char> entities[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    bool decoded = false;
    for (auto [name, c] : entities) {
      if (raw.substr(i).starts_with(name)) {
        out += c;
        i += name.size() - 1;
        decoded = true;
        break;
      }
    }
    if (!decoded) {
      out += '&';
    }
  }
  return out;
}

}  // namespace

std::string assume_role_body(const assume_role_params& params) {
  auto body = fmt::format("Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={}",
                          uri_encode(params.role_arn, true), uri_encode(params.session_name, true));
  if (!params.policy.empty()) {
    body += "&Policy=" + uri_encode(params.policy, true);
  }
  body += fmt::format("&DurationSeconds={}", params.duration.count());
  return body;
}

dp::result<temporary_credentials> parse_assume_role_response(std::string_view xml,
                                                             std::string region) {
  if (xml.find("<ErrorResponse") != std::string_view::npos) {
    return make_error(errc::unavailable, "sts: AssumeRole: {}: {}",
                      element(xml, "Code").value_or("unknown error"),
                      element(xml, "Message").value_or(""));
  }
  auto creds = element(xml, "Credentials");
  if (!creds) {
    return make_error(errc::protocol, "sts: AssumeRole: no Credentials in the answer");
  }
  temporary_credentials t;
  t.keys.access_key = element(*creds, "AccessKeyId").value_or("");
  t.keys.secret_key = element(*creds, "SecretAccessKey").value_or("");
  t.keys.session_token = element(*creds, "SessionToken").value_or("");
  t.keys.region = std::move(region);
  if (t.keys.access_key.empty() || t.keys.secret_key.empty() || t.keys.session_token.empty()) {
    return make_error(errc::protocol,
                      "sts: AssumeRole: AccessKeyId, SecretAccessKey or SessionToken missing");
  }
  auto expires = parse_utc(element(*creds, "Expiration").value_or(""));
  if (!expires) {
    return make_error(errc::protocol, "sts: AssumeRole: bad Expiration");
  }
  t.expires = *expires;
  return t;
}

boost::asio::awaitable<dp::result<temporary_credentials>> assume_role(
    dp::http_client::client& http, std::string_view endpoint, std::string_view region,
    const credentials& signer, const assume_role_params& params) {
  auto url = boost::urls::parse_uri(endpoint);
  if (!url) {
    co_return make_error(errc::invalid_argument, "sts: bad endpoint '{}'", endpoint);
  }
  constexpr std::string_view content_type = "application/x-www-form-urlencoded; charset=utf-8";
  auto body = assume_role_body(params);
  auto payload = sha256_hex(body);
  request sr;
  sr.method = "POST";
  sr.path = "/";
  sr.style = uri_style::standard;
  sr.headers = {{"host", std::string(url->encoded_host_and_port())},
                {"content-type", std::string(content_type)}};
  sr.payload_hash = payload;
  auto sig = sign(sr, signer, {region, "sts", std::chrono::system_clock::now()});
  dp::http_client::request req;
  req.method = "POST";
  std::string base(endpoint);
  while (base.ends_with('/')) {
    base.pop_back();
  }
  req.url = base + "/";
  req.headers = {{"Content-Type", std::string(content_type)}};
  for (auto& h : sig.headers_to_add) {
    req.headers.push_back(std::move(h));
  }
  req.body = std::move(body);
  req.timeout = std::chrono::seconds(30);
  auto r = co_await http.send(std::move(req));
  if (!r) {
    co_return make_error(errc::unavailable, "sts: AssumeRole: {}", r.error().message);
  }
  auto parsed = parse_assume_role_response(r->body, signer.region);
  if (r->status != 200) {
    auto code = r->status >= 500 ? errc::unavailable : errc::unauthorized;
    co_return parsed ? make_error(code, "sts: AssumeRole: HTTP {}", r->status)
                     : make_error(code, "{} (HTTP {})", parsed.error().message, r->status);
  }
  co_return parsed;
}

}  // namespace dp::aws
