// Unit tests: auth rules, site URLs, request validation and the metrics text.
#include <gtest/gtest.h>

#include "dp/api/auth.hpp"
#include "dp/api/input.hpp"
#include "dp/api/metrics.hpp"
#include "dp/api/urls.hpp"

namespace {

using namespace dp::api;
const std::vector<std::string> https_only{"https"};

TEST(auth, constant_time_equal) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
}

TEST(auth, loopback_addresses) {
  EXPECT_TRUE(is_loopback("127.0.0.1"));
  EXPECT_TRUE(is_loopback("127.1.2.3"));
  EXPECT_TRUE(is_loopback("::1"));
  EXPECT_TRUE(is_loopback("::ffff:127.0.0.1"));
  EXPECT_FALSE(is_loopback("10.0.0.1"));
  EXPECT_FALSE(is_loopback("::ffff:10.0.0.1"));
  EXPECT_FALSE(is_loopback("localhost"));  // a name is not an address: never trusted
  EXPECT_FALSE(is_loopback(""));
}

TEST(auth, bearer_header) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer  abc "), "abc");
  EXPECT_FALSE(bearer_token("Basic abc"));
  EXPECT_FALSE(bearer_token("Bearer "));
  EXPECT_FALSE(bearer_token("Bearer"));
}

TEST(auth, tokens_and_local_mode) {
  std::vector<std::string> tokens{"0123456789abcdef", "fedcba9876543210"};
  EXPECT_EQ(authorize(tokens, "fedcba9876543210", "10.0.0.1"), auth_result::ok);
  EXPECT_EQ(authorize(tokens, "wrong", "127.0.0.1"), auth_result::wrong_token);
  EXPECT_EQ(authorize(tokens, std::nullopt, "127.0.0.1"), auth_result::missing_token);
  EXPECT_EQ(authorize({}, std::nullopt, "127.0.0.1"), auth_result::ok);
  EXPECT_EQ(authorize({}, "anything", "::1"), auth_result::ok);
  EXPECT_EQ(authorize({}, std::nullopt, "192.168.1.2"), auth_result::not_loopback);
}

TEST(urls, default_ports_are_left_out) {
  site_options o;
  EXPECT_EQ(site_url(o, "shop-4t6v0w1y"), "http://shop-4t6v0w1y.localhost:8000");
  o.port = 80;
  EXPECT_EQ(site_url(o, "shop"), "http://shop.localhost");
  o.scheme = "https";
  o.port = 443;
  o.base_domain = "example.com";
  EXPECT_EQ(site_url(o, "shop"), "https://shop.example.com");
  o.port = 80;
  EXPECT_EQ(site_url(o, "shop"), "https://shop.example.com:80");
  o.port = 0;
  EXPECT_EQ(site_url(o, "shop"), "https://shop.example.com");
}

template <class R>
void expect_bad(const R& r, std::string_view fragment) {
  ASSERT_FALSE(r) << "accepted";
  EXPECT_TRUE(r.error().is(dp::errc::invalid_argument));
  EXPECT_NE(r.error().message.find(fragment), std::string::npos) << r.error().message;
}

TEST(input, new_project) {
  auto p = parse_new_project(
      R"({"name":"shop","git_url":"https://github.com/acme/shop","branch":"main",)"
      R"("root_dir":"web","build_command":"npm run build","output_dir":null,"env":{"A_B":"1"},)"
      R"("serve_mode":"static"})",
      https_only);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->mode, dp::proto::serve_mode::static_files);
  EXPECT_EQ(p->name, "shop");
  EXPECT_EQ(p->production_branch, "main");
  EXPECT_EQ(p->root_dir, "web");
  EXPECT_EQ(p->build_command, "npm run build");
  EXPECT_FALSE(p->output_dir);
  EXPECT_EQ(p->env.at("A_B"), "1");
}

TEST(input, new_project_refusals) {
  expect_bad(parse_new_project("{", https_only), "not valid JSON");
  expect_bad(parse_new_project("[]", https_only), "JSON object");
  expect_bad(parse_new_project(R"({"git_url":"https://x/y"})", https_only), "'name' is missing");
  expect_bad(parse_new_project(R"({"name":"shop"})", https_only), "'git_url' is missing");
  expect_bad(parse_new_project(R"({"name":5,"git_url":"https://x/y"})", https_only),
             "'name' must be a string");
  expect_bad(parse_new_project(R"({"name":"Shop","git_url":"https://x/y"})", https_only),
             "DNS label");
  expect_bad(parse_new_project(R"({"name":"-shop","git_url":"https://x/y"})", https_only),
             "DNS label");
  std::string long_name(55, 'a');
  expect_bad(
      parse_new_project(R"({"name":")" + long_name + R"(","git_url":"https://x/y"})", https_only),
      "DNS label");
  expect_bad(
      parse_new_project(R"({"name":"shop","git_url":"https://x/y","gitURL":"x"})", https_only),
      "unknown field 'gitURL'");
  expect_bad(
      parse_new_project(R"({"name":"shop","git_url":"https://x/y","root_dir":"../x"})", https_only),
      "root_dir");
  expect_bad(
      parse_new_project(R"({"name":"shop","git_url":"https://x/y","env":{"1A":"x"}})", https_only),
      "variable name");
  expect_bad(
      parse_new_project(R"({"name":"shop","git_url":"https://x/y","env":{"A":1}})", https_only),
      "env.A");
  expect_bad(
      parse_new_project(R"({"name":"shop","git_url":"https://x/y","branch":"-x"})", https_only),
      "branch");
  expect_bad(parse_new_project(R"({"name":"shop","git_url":"https://x/y","serve_mode":"SPA"})",
                               https_only),
             "field 'serve_mode' must be");
}

TEST(input, git_urls_outside_the_policy) {
  for (const char* url :
       {"ssh://git@github.com/a/b", "ext::sh -c touch% /tmp/x", "file:///srv/repo", "-uhttps://x/y",
        "git@github.com:a/b.git", "http://example.com/a"}) {
    std::string body = std::string(R"({"project":"shop","git_url":)") + "\"" + url + "\"}";
    expect_bad(parse_deploy_request(body, https_only), "git_url");
  }
  auto file_ok = parse_deploy_request(R"({"git_url":"file:///srv/repo"})", {"https", "file"});
  EXPECT_TRUE(file_ok) << file_ok.error().message;
}

TEST(input, deploy_request) {
  auto r = parse_deploy_request(R"({"project":"shop","ref":"v1.2"})", https_only);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->project, "shop");
  EXPECT_EQ(r->branch, "v1.2");
  EXPECT_FALSE(r->git_url);
  expect_bad(parse_deploy_request("{}", https_only), "give 'project'");
  expect_bad(parse_deploy_request(R"({"project":"shop","ref":7})", https_only), "'ref'");
  expect_bad(parse_deploy_request(R"({"project":"shop","ref":"a..b"})", https_only), "ref");
}

TEST(input, legacy_request) {
  auto r =
      parse_legacy_deploy_request(R"({"gitURL":"https://github.com/a/b","slug":"b"})", https_only);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->project, "b");
  EXPECT_EQ(r->git_url, "https://github.com/a/b");
  expect_bad(parse_legacy_deploy_request(R"({"slug":"b"})", https_only), "gitURL");
}

TEST(input, project_patch_is_all_or_nothing) {
  dp::proto::project p;
  p.name = "shop";
  p.git_url = "https://x/y";
  p.build_command = "make";
  ASSERT_TRUE(apply_project_patch(p, R"({"build_command":null,"branch":"dev"})", https_only));
  EXPECT_FALSE(p.build_command);
  EXPECT_EQ(p.production_branch, "dev");
  expect_bad(apply_project_patch(p, R"({"branch":"main","git_url":"ssh://x/y"})", https_only),
             "git_url");
  EXPECT_EQ(p.production_branch, "dev");
  expect_bad(apply_project_patch(p, R"({"name":"other"})", https_only), "unknown field");
  // "" skips a step; null goes back to the detected default.
  ASSERT_TRUE(apply_project_patch(p, R"({"install_command":"","build_command":""})", https_only));
  EXPECT_EQ(p.install_command, "");
  EXPECT_EQ(p.build_command, "");
  ASSERT_TRUE(apply_project_patch(p, R"({"serve_mode":"spa"})", https_only));
  EXPECT_EQ(p.mode, dp::proto::serve_mode::spa);
  ASSERT_TRUE(apply_project_patch(p, R"({"serve_mode":null})", https_only));
  EXPECT_FALSE(p.mode);
}

// Files shadow _redirects rules unless the project asks for Cloudflare's order.
TEST(input, redirects_shadowing) {
  dp::proto::project p;
  p.name = "shop";
  p.git_url = "https://x/y";
  EXPECT_EQ(p.shadowing, dp::proto::redirects_shadowing::files);
  ASSERT_TRUE(apply_project_patch(p, R"({"redirects_shadowing":"rules"})", https_only));
  EXPECT_EQ(p.shadowing, dp::proto::redirects_shadowing::rules);
  for (const char* body : {R"({"redirects_shadowing":"cloudflare"})",
                           R"({"redirects_shadowing":null})", R"({"redirects_shadowing":true})"}) {
    expect_bad(apply_project_patch(p, body, https_only),
               "field 'redirects_shadowing' must be \"files\"");
  }
  EXPECT_EQ(p.shadowing, dp::proto::redirects_shadowing::rules);
  ASSERT_TRUE(apply_project_patch(p, R"({"redirects_shadowing":"files"})", https_only));
  EXPECT_EQ(p.shadowing, dp::proto::redirects_shadowing::files);
  auto made = parse_new_project(
      R"({"name":"blog","git_url":"https://x/blog","redirects_shadowing":"rules"})", https_only);
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_EQ(made->shadowing, dp::proto::redirects_shadowing::rules);
}

TEST(input, promote_request) {
  auto ok = parse_promote_request(R"({"deployment_id":"01jh5k7q3x9m2c8r4t6v0w1y3z"})");
  ASSERT_TRUE(ok);
  expect_bad(parse_promote_request(R"({"deployment_id":"nope"})"), "deployment id");
  expect_bad(parse_promote_request(R"({})"), "missing");
}

TEST(input, project_names_from_git_urls) {
  EXPECT_EQ(project_name_from_git_url("https://github.com/acme/My_Shop.git"), "my-shop");
  EXPECT_EQ(project_name_from_git_url("https://github.com/acme/shop/"), "shop");
  EXPECT_EQ(project_name_from_git_url("file:///tmp/dp-test-x1/"), "dp-test-x1");
  EXPECT_FALSE(project_name_from_git_url("https://github.com/acme/___"));
}

TEST(input, counts) {
  EXPECT_EQ(*parse_count(std::nullopt, "limit", 20, 100), 20);
  EXPECT_EQ(*parse_count(std::string("7"), "limit", 20, 100), 7);
  EXPECT_FALSE(parse_count(std::string("101"), "limit", 20, 100));
  EXPECT_FALSE(parse_count(std::string("-1"), "limit", 20, 100));
  EXPECT_FALSE(parse_count(std::string("1x"), "limit", 20, 100));
}

TEST(metrics, prometheus_text) {
  metrics m;
  m.observe("/v1/deployments/{id}", "GET", 200, std::chrono::microseconds(700));
  m.observe("/v1/deployments/{id}", "GET", 404, std::chrono::milliseconds(2));
  m.count_status_event("ready");
  m.set_stream_clients(3);
  auto text = m.render(5);
  EXPECT_NE(text.find("dp_http_requests_total{route=\"/v1/deployments/{id}\",method=\"GET\","
                      "status=\"200\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("dp_http_request_duration_seconds_bucket{route=\"/v1/deployments/{id}\","
                      "le=\"0.001\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("dp_http_request_duration_seconds_count{route=\"/v1/deployments/{id}\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("dp_queue_depth 5\n"), std::string::npos);
  EXPECT_NE(text.find("dp_deployment_status_events_total{status=\"ready\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("dp_log_stream_clients 3\n"), std::string::npos);
  EXPECT_EQ(m.render(std::nullopt).find("dp_queue_depth"), std::string::npos);
}

}  // namespace
