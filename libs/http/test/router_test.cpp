#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "dp/core/errc_table.hpp"
#include "dp/http/json.hpp"
#include "dp/http/router.hpp"
#include "dp/http/stream.hpp"

namespace dp::http {
namespace {

handler tagged(std::string tag) {
  return [tag](request&) -> boost::asio::awaitable<response> {
    co_return response(200, "text/plain", tag);
  };
}

TEST(router, matches_literal_and_param_routes) {
  router r;
  r.get("/v1/projects", tagged("list"));
  r.get("/v1/projects/{name}", tagged("one"));
  r.add(method::post, "/v1/projects", tagged("create"));
  r.get("/v1/deployments/{id}/logs/stream", tagged("stream"));
  std::vector<std::pair<std::string_view, std::string>> params;

  auto m = r.match(method::get, "/v1/projects/shop%20x", params);
  ASSERT_NE(m.target, nullptr);
  ASSERT_EQ(params.size(), 1u);
  EXPECT_EQ(params[0].first, "name");
  EXPECT_EQ(params[0].second, "shop x");

  m = r.match(method::get, "/v1/deployments/01abc/logs/stream", params);
  ASSERT_NE(m.target, nullptr);
  ASSERT_EQ(params.size(), 1u);
  EXPECT_EQ(params[0].second, "01abc");

  // HEAD goes to the GET handler.
  m = r.match(method::head, "/v1/projects", params);
  EXPECT_NE(m.target, nullptr);
  EXPECT_TRUE(params.empty());
}

TEST(router, distinguishes_unknown_path_from_wrong_method) {
  router r;
  r.get("/v1/projects/{name}", tagged("get"));
  r.del("/v1/projects/{name}", tagged("del"));
  r.add(method::patch, "/v1/projects/{name}", tagged("patch"));
  std::vector<std::pair<std::string_view, std::string>> params;

  auto m = r.match(method::get, "/v1/nothing", params);
  EXPECT_EQ(m.target, nullptr);
  EXPECT_TRUE(m.allow.empty());

  m = r.match(method::post, "/v1/projects/shop", params);
  EXPECT_EQ(m.target, nullptr);
  EXPECT_EQ(m.allow, "GET, HEAD, PATCH, DELETE");

  // Segment counts must agree, and an empty parameter does not match.
  EXPECT_EQ(r.match(method::get, "/v1/projects/shop/x", params).target, nullptr);
  EXPECT_EQ(r.match(method::get, "/v1/projects/", params).target, nullptr);
  EXPECT_EQ(r.match(method::get, "/v1/projects", params).target, nullptr);
}

TEST(router, fallback_takes_everything_unmatched) {
  router r;
  r.get("/healthz", tagged("health"));
  r.fallback(tagged("proxy"), route_options{.body_limit = 0});
  std::vector<std::pair<std::string_view, std::string>> params;
  auto m = r.match(method::post, "/any/thing", params);
  ASSERT_NE(m.target, nullptr);
  ASSERT_NE(m.options, nullptr);
  EXPECT_EQ(m.options->body_limit, 0u);
  EXPECT_TRUE(m.allow.empty());
}

TEST(router, rejects_patterns_without_leading_slash) {
  router r;
  EXPECT_THROW(r.get("v1/x", tagged("x")), std::invalid_argument);
}

TEST(url, percent_decode) {
  EXPECT_EQ(percent_decode("a%20b%2Fc"), "a b/c");
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("%zz%4"), "%zz%4");  // malformed escapes stay literal
  EXPECT_EQ(percent_decode("%e2%82%ac"), "\xe2\x82\xac");
  EXPECT_EQ(percent_decode("%00", false), std::string(1, '\0'));
}

TEST(url, parse_query) {
  auto q = parse_query("since=42&name=a%20b+c&flag&&x=1=2&empty=");
  ASSERT_EQ(q.size(), 5u);
  EXPECT_EQ(q[0], (std::pair<std::string, std::string>{"since", "42"}));
  EXPECT_EQ(q[1], (std::pair<std::string, std::string>{"name", "a b c"}));
  EXPECT_EQ(q[2], (std::pair<std::string, std::string>{"flag", ""}));
  EXPECT_EQ(q[3], (std::pair<std::string, std::string>{"x", "1=2"}));
  EXPECT_EQ(q[4], (std::pair<std::string, std::string>{"empty", ""}));
  EXPECT_TRUE(parse_query("").empty());
}

TEST(sse, formats_fields_and_multiline_data) {
  EXPECT_EQ(format_sse({.data = "hello"}), "data: hello\n\n");
  EXPECT_EQ(format_sse({.data = "a\nb\r\nc\rd", .event = "log", .id = "7"}),
            "id: 7\nevent: log\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
  EXPECT_EQ(format_sse({.data = "", .retry_ms = 3000}), "retry: 3000\ndata: \n\n");
  // A line break in a single-line field cannot inject another field.
  EXPECT_EQ(format_sse({.data = "x", .event = "a\ndata: evil"}), "event: a\ndata: x\n\n");
}

// status_for, code_for and error_response read dp::errc_table: no mapping of their own.
TEST(json, error_mapping_is_the_errc_table) {
  for (const auto& row : dp::errc_table) {
    EXPECT_EQ(status_for(row.code), row.http_status) << row.name;
    EXPECT_EQ(code_for(row.code), row.name);
    response r = error_response(make_error(row.code, "m"));
    EXPECT_EQ(r.status, row.http_status);
    auto v = boost::json::parse(std::get<std::string>(r.body));
    EXPECT_EQ(v.at("error").at("code").as_string(), row.name);
  }
  EXPECT_EQ(code_for(static_cast<errc>(99)), "internal");
  EXPECT_EQ(status_for(static_cast<errc>(99)), 500u);
  EXPECT_EQ(code_for(errc::canceled), "canceled");
  EXPECT_EQ(status_for(errc::canceled), 500u);
}

TEST(json, error_body_and_status_mapping) {
  response r = error_response(404, "not_found", "no project \"shop\"");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.header("content-type"), "application/json");
  auto v = boost::json::parse(std::get<std::string>(r.body));
  EXPECT_EQ(v.at("error").at("code").as_string(), "not_found");
  EXPECT_EQ(v.at("error").at("message").as_string(), "no project \"shop\"");

  EXPECT_EQ(status_for(errc::invalid_argument), 400u);
  EXPECT_EQ(status_for(errc::unauthorized), 401u);
  EXPECT_EQ(status_for(errc::forbidden), 403u);
  EXPECT_EQ(status_for(errc::not_found), 404u);
  EXPECT_EQ(status_for(errc::conflict), 409u);
  EXPECT_EQ(status_for(errc::too_large), 413u);
  EXPECT_EQ(status_for(errc::unavailable), 503u);
  EXPECT_EQ(status_for(errc::timeout), 504u);
  EXPECT_EQ(status_for(errc::io), 500u);
  EXPECT_EQ(status_for(make_error(
                boost::system::errc::make_error_code(boost::system::errc::connection_refused),
                "connect")),
            500u);

  response c = error_response(make_error(errc::conflict, "deployment is not ready"));
  EXPECT_EQ(c.status, 409u);
  auto cv = boost::json::parse(std::get<std::string>(c.body));
  EXPECT_EQ(cv.at("error").at("code").as_string(), "conflict");
}

TEST(response, set_replaces_case_insensitively) {
  response r(200, "text/plain", "x");
  r.set("content-type", "text/html");
  r.set("ETag", "\"1\"");
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.header("Content-Type"), "text/html");
  EXPECT_EQ(r.header("etag"), "\"1\"");
}

}  // namespace
}  // namespace dp::http
