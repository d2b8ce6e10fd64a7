// A custom domain end to end with the real binaries: added with deployctl through the api-server
// (pending, not served by the s3-reverse-proxy), verified (the api fetches the token through the
// proxy), then served, over plain HTTP and over HTTPS with a certificate put in the store; and a
// domain of a branch, proven by a TXT record on a real DNS server (on ::1), served the branch's
// deployment.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <fmt/format.h>

#include <cstdio>

#include "dp/redis/client.hpp"
#include "dp/test/async.hpp"
#include "dp/test/certificates.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/live_deployment.hpp"
#include "dp/test/options.hpp"
#include "dp/tls/cert_store.hpp"

namespace {

namespace asio = boost::asio;
using dp::test::run_async;

const std::string platform_key_hex(64, 'c');

// One plain HTTP/1.1 GET with the Host given; returns the status and the body.
std::pair<int, std::string> get(uint16_t port, const std::string& host, const std::string& path) {
  asio::io_context ioc;
  asio::ip::tcp::socket sock(ioc);
  sock.connect({asio::ip::make_address("127.0.0.1"), port});
  std::string req =
      fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", path, host);
  asio::write(sock, asio::buffer(req));
  std::string raw;
  boost::system::error_code ec;
  asio::read(sock, asio::dynamic_buffer(raw), ec);
  size_t end = raw.find("\r\n\r\n");
  if (raw.size() < 12 || end == std::string::npos) {
    return {0, raw};
  }
  return {std::stoi(raw.substr(9, 3)), raw.substr(end + 4)};
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while (p && (n = std::fread(buf, 1, sizeof buf, p)) > 0) {
    out.append(buf, n);
  }
  if (p) {
    ::pclose(p);
  }
  return out;
}

class domains_e2e : public ::testing::Test {
 protected:
  void SetUp() override {
    std::map<std::string, std::string> env{{"REDIS_URL", redis_.url()},
                                           {"STORAGE_URL", "file://" + files_.path().string()},
                                           {"BASE_DOMAIN", "example.test"},
                                           {"LOG_FORMAT", "json"},
                                           {"LOG_LEVEL", "info"}};
    auto proxy_env = env;
    proxy_env["PROXY_LISTEN"] = "127.0.0.1:0";
    proxy_env["ADMIN_LISTEN"] = "127.0.0.1:0";
    proxy_env["PROXY_TLS_LISTEN"] = "127.0.0.1:0";
    proxy_env["PLATFORM_KEY"] = platform_key_hex;
    proxy_.emplace(dp::test::process_options{.argv = {PROXY_BIN}, .env = proxy_env});
    proxy_port_ = dp::test::reported_port(*proxy_, "listen");
    tls_port_ = dp::test::reported_port(*proxy_, "tls");
    auto api_env = env;
    api_env["API_LISTEN"] = "127.0.0.1:0";
    // The check reaches the domain through the proxy, as DNS would lead it there.
    api_env["DOMAIN_VERIFY_ADDRESS"] = "127.0.0.1:" + std::to_string(proxy_port_);
    api_env["DNS_RESOLVER"] = dns_.address();
    api_.emplace(dp::test::process_options{.argv = {API_SERVER_BIN}, .env = api_env});
    api_port_ = dp::test::reported_port(*api_);
  }

  dp::test::http_response api(const std::string& method, const std::string& target,
                              const std::string& body = {}) {
    return dp::test::json_request(api_port_, method, target, body);
  }

  // deployctl's output (stdout and stderr) with the api-server's URL.
  std::string deployctl(const std::string& args) {
    return run(
        fmt::format("DEPLOYCTL_API_URL=http://127.0.0.1:{} {} {}", api_port_, DEPLOYCTL_BIN, args));
  }

  // A live deployment of `project` serving index.html: production, or a preview of `branch`.
  void deploy(const std::string& project, const std::string& index,
              const std::string& branch = {}) {
    dp::test::deploy_index(redis_, files_.path(), project, index, branch);
  }

  dp::test::redis_server redis_;
  // On IPv6 loopback: DNS_RESOLVER=[::1]:<port> (libs/dns's own tests ask 127.0.0.1 too).
  dp::test::dns_server dns_{"::1"};
  dp::test::temp_dir files_{"dp-domains-files"};
  dp::test::temp_dir certs_{"dp-domains-certs"};
  std::optional<dp::test::child_process> proxy_;
  std::optional<dp::test::child_process> api_;
  uint16_t proxy_port_ = 0, tls_port_ = 0, api_port_ = 0;
};

TEST_F(domains_e2e, added_then_verified_then_served_over_http_and_https) {
  auto p = api("POST", "/v1/projects", R"({"name":"shop","git_url":"https://example.com/s.git"})");
  ASSERT_EQ(p.status, 201) << p.body;
  deploy("shop", "<h1>shop home</h1>");

  auto added = deployctl("domains add shop shop.example.com");
  EXPECT_NE(added.find("shop.example.com added to shop for production (pending"), std::string::npos)
      << added;
  EXPECT_NE(added.find("/.well-known/dp-verify/"), std::string::npos) << added;
  // Pending: the proxy does not serve it.
  EXPECT_EQ(get(proxy_port_, "shop.example.com", "/").first, 404);

  auto verified = deployctl("domains verify shop shop.example.com");
  ASSERT_NE(verified.find("shop.example.com is verified and served for shop"), std::string::npos)
      << verified << "\n"
      << api_->log_text();
  auto listed = deployctl("domains ls shop");
  EXPECT_NE(listed.find("shop.example.com"), std::string::npos) << listed;
  EXPECT_NE(listed.find("verified"), std::string::npos) << listed;
  // Served now (the route event of the verification drops the proxy's negative lookup).
  ASSERT_TRUE(
      dp::test::eventually([&] { return get(proxy_port_, "shop.example.com", "/").first == 200; }));
  EXPECT_EQ(get(proxy_port_, "shop.example.com", "/").second, "<h1>shop home</h1>");

  // A certificate put in the store reaches the running proxy.
  auto pair = dp::test::make_certificate(certs_.path(), "shop", {"shop.example.com"});
  run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
    dp::redis::client redis(ioc.get_executor(), dp::test::redis_options(redis_));
    dp::tls::cert_store store(redis, dp::proto::keys{},
                              *dp::tls::platform_key::from_hex(platform_key_hex));
    EXPECT_TRUE(co_await store.put("shop.example.com", pair.chain_pem, pair.key_pem));
    redis.close();
  });
  std::string curl = fmt::format(
      "curl -sS --max-time 10 --resolve shop.example.com:{0}:127.0.0.1 --cacert '{1}' "
      "https://shop.example.com:{0}/",
      tls_port_, pair.chain_file.string());
  std::string out;
  ASSERT_TRUE(dp::test::eventually([&] {
    out = run(curl);
    return out == "<h1>shop home</h1>";
  })) << out
      << "\n"
      << proxy_->log_text();
  // And plain HTTP redirects to it.
  EXPECT_EQ(get(proxy_port_, "shop.example.com", "/").first, 308);
  // deployctl shows it: issued (the self-signed certificate is its own issuer), renewed 30 days
  // before the stored expiry, and nothing to staple (it names no OCSP responder).
  listed = deployctl("domains ls shop");
  EXPECT_NE(listed.find("CERTIFICATE  OCSP\n"), std::string::npos) << listed;
  EXPECT_NE(listed.find(" issued       not_available\n"), std::string::npos) << listed;
  EXPECT_NE(listed.find("  certificate: valid until "), std::string::npos) << listed;
  EXPECT_NE(listed.find(", issuer CN=shop.example.com, renewed from "), std::string::npos)
      << listed;
  EXPECT_NE(listed.find("  ocsp: the CA runs no OCSP responder"), std::string::npos) << listed;
}

TEST_F(domains_e2e, a_branch_domain_proven_by_txt_serves_the_branch_until_pointed_at_production) {
  auto p = api("POST", "/v1/projects", R"({"name":"shop","git_url":"https://example.com/s.git"})");
  ASSERT_EQ(p.status, 201) << p.body;
  deploy("shop", "<h1>production</h1>");
  deploy("shop", "<h1>staging</h1>", "staging");

  auto added = deployctl("domains add shop staging.example.com --branch staging");
  EXPECT_NE(added.find("for branch staging"), std::string::npos) << added;
  EXPECT_NE(added.find("_dp-verify.staging.example.com = "), std::string::npos) << added;
  auto got = api("GET", "/v1/projects/shop/domains/staging.example.com");
  auto token = boost::json::parse(got.body).at("verification").at("token").as_string();
  dns_.add_txt("_dp-verify.staging.example.com", std::string(token));

  // The TXT record is asked first, so it is the proof although the proxy would answer too.
  auto verified = deployctl("domains verify shop staging.example.com");
  ASSERT_NE(verified.find("staging.example.com is verified and served for shop (branch staging, "
                          "proven by txt)"),
            std::string::npos)
      << verified << "\n"
      << api_->log_text();
  ASSERT_TRUE(dp::test::eventually(
      [&] { return get(proxy_port_, "staging.example.com", "/").second == "<h1>staging</h1>"; }));

  auto served = deployctl("domains serve shop staging.example.com");
  EXPECT_NE(served.find("staging.example.com serves production of shop"), std::string::npos)
      << served;
  // The proxy's cached route expires within its TTL.
  ASSERT_TRUE(dp::test::eventually([&] {
    return get(proxy_port_, "staging.example.com", "/").second == "<h1>production</h1>";
  }));
  auto listed = deployctl("domains ls shop");
  EXPECT_NE(listed.find("production"), std::string::npos) << listed;
}

}  // namespace
