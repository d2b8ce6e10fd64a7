// The api-server and the s3-reverse-proxy listen on port 0 when asked (*_LISTEN=127.0.0.1:0) and
// print in their JSON "listening" log line the addresses they actually bound, which is how tests
// start them without racing on a port that was free a moment ago.
#include <gtest/gtest.h>

#include <string>

#include "dp/test/harness.hpp"

namespace {

class listen_test : public ::testing::Test {
 protected:
  dp::test::process_options options(const char* binary) {
    return {.argv = {binary},
            .env = {{"REDIS_URL", redis_.url()},
                    {"STORAGE_URL", "file://" + files_.path().string()},
                    {"LOG_FORMAT", "json"},
                    {"LOG_LEVEL", "info"}}};
  }

  dp::test::redis_server redis_;
  dp::test::temp_dir files_{"dp-listen-files"};
};

TEST_F(listen_test, api_server_reports_the_port_it_bound_and_serves_on_it) {
  auto o = options(API_SERVER_BIN);
  o.env["API_LISTEN"] = "127.0.0.1:0";
  dp::test::child_process api(std::move(o));
  auto port = dp::test::reported_port(api);
  ASSERT_NE(port, 0);

  auto r = dp::test::http_request(port, "GET", "/healthz");
  ASSERT_TRUE(r) << r.error().describe() << "\n" << api.log_text();
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(listen_test, proxy_reports_its_two_ports_and_serves_on_both) {
  auto o = options(PROXY_BIN);
  o.env["PROXY_LISTEN"] = "127.0.0.1:0";
  o.env["ADMIN_LISTEN"] = "127.0.0.1:0";
  dp::test::child_process proxy(std::move(o));
  auto port = dp::test::reported_port(proxy, "listen");
  auto admin = dp::test::reported_port(proxy, "admin");
  ASSERT_NE(port, admin);

  auto health = dp::test::http_request(admin, "GET", "/healthz");
  ASSERT_TRUE(health) << health.error().describe() << "\n" << proxy.log_text();
  EXPECT_EQ(health->status, 200) << health->body;

  // No deployment answers to this host (127.0.0.1): the proxy itself says so.
  auto site = dp::test::http_request(port, "GET", "/");
  ASSERT_TRUE(site) << site.error().describe() << "\n" << proxy.log_text();
  EXPECT_EQ(site->status, 404) << site->body;
}

TEST_F(listen_test, a_binary_that_exits_before_listening_is_reported_with_its_log) {
  auto o = options(API_SERVER_BIN);
  o.env["API_LISTEN"] = "127.0.0.1:0";
  o.env["REDIS_URL"] = "not a url";
  o.print_log_on_test_failure = false;
  dp::test::child_process api(std::move(o));
  try {
    dp::test::reported_port(api);
    ADD_FAILURE() << "reported_port returned for a process that exits at start";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("exited before"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("REDIS_URL"), std::string::npos) << e.what();
  }
}

}  // namespace
