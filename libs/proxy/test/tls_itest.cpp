// HTTPS through the proxy library: certificates from the store chosen by SNI, the TLS policy,
// HTTP -> HTTPS redirects, ACME and ownership answers, HSTS, and a certificate swapped in a
// running proxy. Clients are the openssl and curl command-line tools.
#include <gtest/gtest.h>

#include <boost/asio.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "dp/core/clock.hpp"
#include "dp/proxy/proxy.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/domains.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/async.hpp"
#include "dp/test/certificates.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/live_deployment.hpp"
#include "dp/test/ocsp.hpp"
#include "dp/test/options.hpp"
#include "dp/tls/cert_store.hpp"
#include "dp/tls/ocsp.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using dp::test::eventually;
using dp::test::run_async;

// A command's stdout (stderr folded in) and exit status.
struct command_result {
  int status = -1;
  std::string output;
};

command_result run(const std::string& cmd) {
  command_result r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) {
    return r;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
    r.output.append(buf, n);
  }
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

struct reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// One plain request with the Host given, through the harness's client.
reply fetch(uint16_t port, const std::string& host, const std::string& target) {
  auto r = dp::test::http_request(port, "GET", target, {}, {{"Host", host}});
  if (!r) {
    return reply{};
  }
  return reply{r->status, std::move(r->headers), std::move(r->body)};
}

dp::tls::platform_key test_key() {
  return *dp::tls::platform_key::from_hex(std::string(64, 'a'));
}

class tls_test : public ::testing::Test {
 protected:
  void SetUp() override {
    storage_url_.kind = dp::storage::storage_url::scheme::file;
    storage_url_.root = files_.path();
    redis_opts_ = dp::test::redis_options(redis_);
    deploy("shop", "<h1>shop</h1>");
    run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
      dp::redis::client redis(ioc.get_executor(), redis_opts_);
      dp::state::domains domains(redis, dp::proto::keys{});
      for (auto fqdn : {"shop.example.com", "www.shop.example.com"}) {
        dp::state::domain d{.fqdn = fqdn, .project = "shop", .token = "proof123"};
        EXPECT_TRUE(co_await domains.add(d));
      }
      EXPECT_TRUE(co_await domains.verify("shop.example.com", "shop"));
      EXPECT_TRUE(co_await domains.verify("www.shop.example.com", "shop"));
      EXPECT_TRUE(co_await domains.set_options("shop.example.com", "shop", true, true));
      redis.close();
    });
    dp::proxy::options o;
    o.base_domain = "example.test";
    o.redis = redis_opts_;
    o.storage = storage_url_;
    o.access_log = false;
    o.tls_listen = dp::config::host_port{"127.0.0.1", 0};
    o.platform_key = test_key();
    proxy_.emplace(ioc_, o);
    auto started = proxy_->start();
    ASSERT_TRUE(started) << started.error().message;
    thread_ = std::thread([this] { proxy_->run(); });
  }

  void TearDown() override {
    if (proxy_) {
      proxy_->stop(1s, [this] { ioc_.stop(); });
    }
    if (thread_.joinable()) {
      thread_.join();
    }
  }

  // One deployment with index.html, live at alias:<project>.
  void deploy(const std::string& project, const std::string& index) {
    dp::test::deploy_index(redis_, files_.path(), project, index);
  }

  void put_certificate(const std::string& name, const dp::test::pem_pair& pair) {
    run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
      dp::redis::client redis(ioc.get_executor(), redis_opts_);
      dp::tls::cert_store store(redis, dp::proto::keys{}, test_key());
      auto put = co_await store.put(name, pair.chain_pem, pair.key_pem);
      EXPECT_TRUE(put) << (put ? "" : put.error().message);
      redis.close();
    });
  }

  // Stores `response` as the name's OCSP response, as the worker does once it checked it (here
  // checked against `checked_with`, which may be another chain's: the proxy must refuse it).
  void put_ocsp(const std::string& name, const dp::test::pem_pair& pair,
                const dp::test::pem_pair& checked_with, const std::string& response) {
    auto now = dp::now_ms();
    auto validity = dp::tls::check_ocsp_response(checked_with.chain_pem, response, now);
    ASSERT_TRUE(validity) << validity.error().message;
    run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
      dp::redis::client redis(ioc.get_executor(), redis_opts_);
      dp::tls::cert_store store(redis, dp::proto::keys{}, test_key());
      auto put = co_await store.put_ocsp(name, pair.chain_pem, response, *validity, 0);
      EXPECT_TRUE(put && *put);
      redis.close();
    });
  }

  // curl over HTTPS with the name resolved to the proxy's TLS port.
  command_result curl(const std::string& host, const std::string& path,
                      const std::filesystem::path& ca, const std::string& extra = "") {
    return run(
        fmt::format("curl -sS -i --max-time 10 --resolve {0}:{1}:127.0.0.1 --cacert '{2}' "
                    "{3} https://{0}:{1}{4}",
                    host, proxy_->tls_port(), ca.string(), extra, path));
  }

  // openssl s_client: one GET on a new connection; the output holds the server's certificate.
  command_result s_client(const std::string& host, const std::string& flags = "") {
    return run(fmt::format(
        "printf 'GET / HTTP/1.1\\r\\nHost: {0}\\r\\nConnection: close\\r\\n\\r\\n' | "
        "timeout 10 openssl s_client -connect 127.0.0.1:{1} -servername {0} -ign_eof {2}",
        host, proxy_->tls_port(), flags));
  }

  bool serves_https(const std::string& host, const std::filesystem::path& ca) {
    auto r = curl(host, "/", ca);
    return r.status == 0 && r.output.find(" 200") != std::string::npos;
  }

  dp::test::redis_server redis_;
  dp::test::temp_dir files_{"dp-tls-files"};
  dp::test::temp_dir certs_{"dp-tls-certs"};
  dp::storage::storage_url storage_url_;
  dp::redis::options redis_opts_;
  asio::io_context ioc_;
  std::optional<dp::proxy::proxy> proxy_;
  std::thread thread_;
};

TEST_F(tls_test, serves_a_stored_certificate_by_sni_and_redirects_plain_http) {
  auto pair = dp::test::make_certificate(certs_.path(), "shop", {"shop.example.com"});
  // Before a certificate exists plain HTTP serves the site.
  auto plain = fetch(proxy_->port(), "shop.example.com", "/");
  EXPECT_EQ(plain.status, 200);

  put_certificate("shop.example.com", pair);
  ASSERT_TRUE(eventually([&] { return serves_https("shop.example.com", pair.chain_file); }))
      << curl("shop.example.com", "/", pair.chain_file).output;
  auto r = curl("shop.example.com", "/?q=1", pair.chain_file);
  EXPECT_NE(r.output.find("<h1>shop</h1>"), std::string::npos) << r.output;
  // HSTS is on for this domain.
  EXPECT_NE(r.output.find("Strict-Transport-Security: max-age=31536000"), std::string::npos)
      << r.output;

  // Plain HTTP now redirects, keeping path and query.
  plain = fetch(proxy_->port(), "shop.example.com", "/a/b?x=1");
  EXPECT_EQ(plain.status, 308);
  EXPECT_EQ(plain.header("location"), "https://shop.example.com/a/b?x=1");
}

TEST_F(tls_test, answers_acme_challenges_and_ownership_tokens_over_plain_http) {
  auto pair = dp::test::make_certificate(certs_.path(), "shop", {"shop.example.com"});
  put_certificate("shop.example.com", pair);
  ASSERT_TRUE(eventually([&] { return serves_https("shop.example.com", pair.chain_file); }));
  run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
    dp::redis::client redis(ioc.get_executor(), redis_opts_);
    dp::tls::challenge_store challenges(redis, dp::proto::keys{});
    EXPECT_TRUE(co_await challenges.put("tok_A-1", "tok_A-1.thumbprint", 60s));
    redis.close();
  });
  // Any Host, never redirected, even once the host has a certificate.
  for (auto host : {"shop.example.com", "unknown.example.org"}) {
    auto r = fetch(proxy_->port(), host, "/.well-known/acme-challenge/tok_A-1");
    EXPECT_EQ(r.status, 200) << host;
    EXPECT_EQ(r.body, "tok_A-1.thumbprint");
  }
  auto missing = fetch(proxy_->port(), "shop.example.com", "/.well-known/acme-challenge/nope");
  EXPECT_EQ(missing.status, 404);
  // The ownership token of a domain's record.
  auto proof = fetch(proxy_->port(), "www.shop.example.com", "/.well-known/dp-verify/proof123");
  EXPECT_EQ(proof.status, 200);
  EXPECT_EQ(proof.body, "proof123");
  auto wrong = fetch(proxy_->port(), "www.shop.example.com", "/.well-known/dp-verify/other");
  EXPECT_EQ(wrong.status, 404);
}

TEST_F(tls_test, the_www_twin_redirects_to_the_primary) {
  auto r = fetch(proxy_->port(), "www.shop.example.com", "/x?y=1");
  EXPECT_EQ(r.status, 308);
  EXPECT_EQ(r.header("location"), "http://shop.example.com/x?y=1");
}

TEST_F(tls_test, an_unknown_sni_name_fails_the_handshake) {
  auto pair = dp::test::make_certificate(certs_.path(), "shop", {"shop.example.com"});
  put_certificate("shop.example.com", pair);
  ASSERT_TRUE(eventually([&] { return serves_https("shop.example.com", pair.chain_file); }));
  auto r = curl("other.example.com", "/", pair.chain_file);
  EXPECT_EQ(r.status, 35) << r.output;  // CURLE_SSL_CONNECT_ERROR
  auto s = s_client("other.example.com");
  EXPECT_NE(s.output.find("unrecognized name"), std::string::npos) << s.output;
}

TEST_F(tls_test, only_tls_1_2_and_1_3_are_spoken) {
  auto pair = dp::test::make_certificate(certs_.path(), "shop", {"shop.example.com"});
  put_certificate("shop.example.com", pair);
  ASSERT_TRUE(eventually([&] { return serves_https("shop.example.com", pair.chain_file); }));
  auto v13 = s_client("shop.example.com", "-tls1_3");
  EXPECT_NE(v13.output.find("Protocol  : TLSv1.3"), std::string::npos) << v13.output;
  auto v12 = s_client("shop.example.com", "-tls1_2");
  EXPECT_NE(v12.output.find("Protocol  : TLSv1.2"), std::string::npos) << v12.output;
  EXPECT_NE(v12.output.find("ECDHE"), std::string::npos) << v12.output;
  // A client willing to speak TLS 1.1 (its own security level lowered) is refused by the server.
  auto v11 = s_client("shop.example.com", "-tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'");
  EXPECT_EQ(v11.output.find("HTTP/1.1 200"), std::string::npos) << v11.output;
  EXPECT_NE(v11.output.find("alert protocol version"), std::string::npos) << v11.output;
}

TEST_F(tls_test, sessions_resume) {
  auto pair = dp::test::make_certificate(certs_.path(), "shop", {"shop.example.com"});
  put_certificate("shop.example.com", pair);
  ASSERT_TRUE(eventually([&] { return serves_https("shop.example.com", pair.chain_file); }));
  auto session = (certs_.path() / "session.pem").string();
  for (auto version : {"-tls1_2", "-tls1_3"}) {
    auto first = s_client("shop.example.com", fmt::format("{} -sess_out '{}'", version, session));
    EXPECT_NE(first.output.find("HTTP/1.1 200"), std::string::npos) << first.output;
    auto again = s_client("shop.example.com", fmt::format("{} -sess_in '{}'", version, session));
    EXPECT_NE(again.output.find("Reused,"), std::string::npos) << version << "\n" << again.output;
  }
}

// PROXY_TLS_CERT_FILE: a wildcard for the base domain from files serves every site subdomain,
// with no platform key and nothing in the store.
TEST_F(tls_test, a_wildcard_certificate_from_files_serves_the_subdomains) {
  auto pair = dp::test::make_certificate(certs_.path(), "wild", {"*.example.test"});
  dp::proxy::options o;
  o.base_domain = "example.test";
  o.redis = redis_opts_;
  o.storage = storage_url_;
  o.access_log = false;
  o.tls_listen = dp::config::host_port{"127.0.0.1", 0};
  o.tls_cert_file = pair.chain_file.string();
  o.tls_key_file = pair.key_file.string();
  asio::io_context ioc;
  dp::proxy::proxy files_proxy(ioc, o);
  auto started = files_proxy.start();
  ASSERT_TRUE(started) << started.error().message;
  std::thread runner([&] { files_proxy.run(); });
  auto r =
      run(fmt::format("curl -sS --max-time 10 --resolve shop.example.test:{0}:127.0.0.1 "
                      "--cacert '{1}' https://shop.example.test:{0}/",
                      files_proxy.tls_port(), pair.chain_file.string()));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "<h1>shop</h1>");
  EXPECT_EQ(fetch(files_proxy.port(), "shop.example.test", "/").status, 308);
  // Not covered: a custom domain stays on plain HTTP.
  EXPECT_EQ(fetch(files_proxy.port(), "shop.example.com", "/").status, 200);
  files_proxy.stop(1s, [&] { ioc.stop(); });
  runner.join();
}

// A file that is not a certificate stops the start with the file's name.
TEST_F(tls_test, an_unreadable_certificate_file_fails_the_start) {
  dp::proxy::options o;
  o.redis = redis_opts_;
  o.storage = storage_url_;
  o.tls_listen = dp::config::host_port{"127.0.0.1", 0};
  o.tls_cert_file = (certs_.path() / "missing.crt").string();
  o.tls_key_file = (certs_.path() / "missing.key").string();
  asio::io_context ioc;
  dp::proxy::proxy bad(ioc, o);
  auto started = bad.start();
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message.find("missing.crt"), std::string::npos)
      << started.error().message;
}

// A renewed certificate reaches the running proxy through the events channel; requests made on
// new connections all along see the old certificate, then the new one, and none fails.
TEST_F(tls_test, a_swapped_certificate_is_served_without_a_failed_request) {
  auto first = dp::test::make_certificate(certs_.path(), "first", {"shop.example.com"});
  auto second = dp::test::make_certificate(certs_.path(), "second", {"shop.example.com"});
  put_certificate("shop.example.com", first);
  ASSERT_TRUE(eventually([&] { return serves_https("shop.example.com", first.chain_file); }));
  auto pem_body = [](const std::string& pem) {
    return pem.substr(pem.find('\n') + 1, 64);  // a line of the certificate's base64
  };
  std::atomic<bool> warmed_up{false};
  int failed = 0, with_first = 0, with_second = 0;
  std::string last_failure;
  std::thread client([&] {
    // Until the new certificate is seen (bounded, in case it never is).
    for (int i = 0; i < 2000 && with_second == 0; ++i) {
      auto r = s_client("shop.example.com");
      bool ok = r.output.find("HTTP/1.1 200") != std::string::npos;
      if (!ok) {
        ++failed;
        last_failure = r.output;
      } else if (r.output.find(pem_body(second.chain_pem)) != std::string::npos) {
        ++with_second;
      } else if (r.output.find(pem_body(first.chain_pem)) != std::string::npos) {
        ++with_first;
      }
      if (i == 3) {
        // A few requests on the first certificate, then the swap.
        warmed_up = true;
        warmed_up.notify_all();
      }
    }
  });
  warmed_up.wait(false);
  put_certificate("shop.example.com", second);
  client.join();
  EXPECT_EQ(failed, 0) << last_failure;
  EXPECT_GT(with_first, 0);
  EXPECT_EQ(with_second, 1);
}

// OCSP stapling: the stored response of the name's chain is stapled (TLS 1.2 and 1.3); a
// response that is not the chain's is not, and a certificate without an OCSP URL is served
// without a staple.
TEST_F(tls_test, staples_the_stored_ocsp_response_of_the_names_chain) {
  dp::test::test_ca ca(certs_.path(), "Test CA", "http://127.0.0.1:9");
  auto shop = ca.issue("shop", {"shop.example.com"});
  auto blog = ca.issue("blog", {"blog.example.com"});
  auto www = ca.issue("www", {"www.shop.example.com"}, false);
  put_certificate("shop.example.com", shop);
  put_certificate("blog.example.com", blog);
  put_certificate("www.shop.example.com", www);
  ASSERT_TRUE(eventually([&] { return serves_https("shop.example.com", ca.cert_file()); }));
  auto unstapled = s_client("shop.example.com", "-status");
  EXPECT_NE(unstapled.output.find("OCSP response: no response sent"), std::string::npos)
      << unstapled.output;

  auto blog_response = ca.respond(*dp::tls::ocsp_request(blog.chain_pem));
  put_ocsp("shop.example.com", shop, blog, blog_response);  // not shop's: never stapled
  put_ocsp("blog.example.com", blog, blog, blog_response);
  // Events are handled in order: once blog's staple is served, shop's was refused.
  ASSERT_TRUE(eventually([&] {
    return s_client("blog.example.com", "-status")
               .output.find("OCSP Response Status: successful") != std::string::npos;
  }));
  auto mismatched = s_client("shop.example.com", "-status");
  EXPECT_NE(mismatched.output.find("OCSP response: no response sent"), std::string::npos)
      << mismatched.output;

  put_ocsp("shop.example.com", shop, shop, ca.respond(*dp::tls::ocsp_request(shop.chain_pem)));
  ASSERT_TRUE(eventually([&] {
    return s_client("shop.example.com", "-status").output.find("Cert Status: good") !=
           std::string::npos;
  }));
  for (auto version : {"-tls1_2", "-tls1_3"}) {
    auto r = s_client("shop.example.com", fmt::format("-status {}", version));
    EXPECT_NE(r.output.find("OCSP Response Status: successful"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("Cert Status: good"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("HTTP/1.1 200"), std::string::npos) << r.output;
  }
  // No OCSP URL, no staple; the certificate serves all the same.
  auto plain = s_client("www.shop.example.com", "-status");
  EXPECT_NE(plain.output.find("OCSP response: no response sent"), std::string::npos)
      << plain.output;
  EXPECT_NE(plain.output.find("HTTP/1.1 308"), std::string::npos) << plain.output;
}

}  // namespace
