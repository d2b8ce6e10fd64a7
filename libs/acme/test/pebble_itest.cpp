// The ACME client against a real Pebble: accounts, issuance with HTTP-01 answered by a small
// HTTP server in the test, the chain checked against Pebble's own root and intermediate, and a
// validation that fails.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <map>
#include <mutex>
#include <thread>

#include "dp/acme/client.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;

constexpr std::string_view challenge_prefix = "/.well-known/acme-challenge/";

// What the proxy does for ACME: answers /.well-known/acme-challenge/<token> with the key
// authorization published for it, 404 for anything else. One blocking thread.
class challenge_server : public dp::acme::challenge_responder {
 public:
  challenge_server() : acceptor_(io_, {net::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~challenge_server() override {
    stopping_ = true;
    // Wake the blocking accept with one connection of our own.
    net::ip::tcp::socket wake(io_);
    boost::system::error_code ignored;
    wake.connect({net::ip::make_address("127.0.0.1"), port_}, ignored);
    thread_.join();
  }
  std::uint16_t port() const { return port_; }
  size_t published() {
    std::lock_guard lock(mutex_);
    return answers_.size();
  }
  int requests() const { return requests_; }

  net::awaitable<dp::result<void>> publish(std::string token, std::string key_auth) override {
    std::lock_guard lock(mutex_);
    answers_[token] = key_auth;
    co_return dp::result<void>{};
  }
  net::awaitable<dp::result<void>> withdraw(std::string token) override {
    std::lock_guard lock(mutex_);
    answers_.erase(token);
    co_return dp::result<void>{};
  }

 private:
  void serve() {
    while (!stopping_) {
      net::ip::tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stopping_) {
        return;
      }
      boost::beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(socket, buffer, req, ec);
      if (ec) {
        continue;
      }
      ++requests_;
      http::response<http::string_body> res{http::status::not_found, req.version()};
      std::string_view target = req.target();
      if (target.starts_with(challenge_prefix)) {
        std::lock_guard lock(mutex_);
        if (auto it = answers_.find(std::string(target.substr(challenge_prefix.size())));
            it != answers_.end()) {
          res.result(http::status::ok);
          res.body() = it->second;
        }
      }
      res.keep_alive(false);
      res.prepare_payload();
      http::write(socket, res, ec);
    }
  }

  net::io_context io_;
  net::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  std::mutex mutex_;
  std::map<std::string, std::string> answers_;
  std::thread thread_;
};

// Verifies `chain_pem` (leaf first) up to `root_pem`, and returns the leaf's DNS names; empty
// (with a test failure) when it does not verify.
std::vector<std::string> verified_names(const std::string& chain_pem, const std::string& root_pem) {
  auto read_all = [](const std::string& pem) {
    std::vector<X509*> certs;
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    while (X509* c = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      certs.push_back(c);
    }
    BIO_free(bio);
    return certs;
  };
  auto chain = read_all(chain_pem);
  auto roots = read_all(root_pem);
  std::vector<std::string> names;
  if (chain.empty() || roots.empty()) {
    ADD_FAILURE() << "no certificate in the chain or the root";
    return names;
  }
  X509_STORE* store = X509_STORE_new();
  for (X509* r : roots) {
    X509_STORE_add_cert(store, r);
  }
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i < chain.size(); ++i) {
    sk_X509_push(untrusted, chain[i]);
  }
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, chain[0], untrusted);
  if (X509_verify_cert(ctx) != 1) {
    ADD_FAILURE() << "chain does not verify: "
                  << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
  } else {
    auto* sans = static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(chain[0], NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
      if (n->type == GEN_DNS) {
        names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                           static_cast<size_t>(ASN1_STRING_length(n->d.dNSName)));
      }
    }
    GENERAL_NAMES_free(sans);
  }
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);
  X509_STORE_free(store);
  for (X509* c : chain) {
    X509_free(c);
  }
  for (X509* c : roots) {
    X509_free(c);
  }
  return names;
}

dp::acme::client_options options_for(const dp::test::pebble& ca) {
  dp::acme::client_options o;
  o.directory_url = ca.directory_url();
  o.contact_email = "admin@example.test";
  o.poll_interval = std::chrono::milliseconds(100);
  return o;
}

dp::http_client::client_options trusting(const dp::test::pebble& ca) {
  dp::http_client::client_options o;
  o.ca_file = ca.ca_file().string();
  return o;
}

TEST(AcmePebble, IssuesACertificateThatPebbleSigned) {
  challenge_server responder;
  dp::test::pebble ca(responder.port());
  dp::test::run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    dp::http_client::client http(ex, trusting(ca));
    dp::acme::client acme(http, dp::acme::ec_key::generate(), options_for(ca));
    std::vector<std::string> names{"site.example.test", "www.site.example.test"};
    auto issued = co_await acme.issue(names, responder);
    CO_ASSERT_OK(issued);
    EXPECT_EQ(verified_names(issued->chain_pem, ca.root_pem()), names);
    EXPECT_NE(issued->chain_pem.find(ca.intermediate_pem().substr(0, 100)), std::string::npos);
    EXPECT_GT(issued->not_after, std::chrono::system_clock::now());
    EXPECT_TRUE(dp::acme::ec_key::from_pem(issued->key_pem).has_value());
    // Pebble fetched both answers from us, and none is left published.
    EXPECT_GE(responder.requests(), 2);
    EXPECT_EQ(responder.published(), 0u);
  });
}

// Pebble rejects 15 % of good nonces with badNonce, as Boulder may: the client retries with the
// nonce the rejection carries. Two issuances make about 25 signed requests, so some are rejected
// (all pass at once in 2 % of runs) and none fails for good (six rejections in a row: 1e-5).
TEST(AcmePebble, IssuesDespiteRejectedNonces) {
  challenge_server responder;
  dp::test::pebble ca(responder.port(), {{"PEBBLE_WFE_NONCEREJECT", "15"}});
  dp::test::run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    dp::http_client::client http(ex, trusting(ca));
    dp::acme::client acme(http, dp::acme::ec_key::generate(), options_for(ca));
    for (std::string name : {"one.example.test", "two.example.test"}) {
      std::vector<std::string> names{name};
      auto issued = co_await acme.issue(names, responder);
      CO_ASSERT_OK(issued);
      EXPECT_EQ(verified_names(issued->chain_pem, ca.root_pem()), names);
    }
  });
}

TEST(AcmePebble, TheSameKeyFindsItsAccountAgain) {
  challenge_server responder;
  dp::test::pebble ca(responder.port());
  dp::test::run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    dp::http_client::client http(ex, trusting(ca));
    auto key = dp::acme::ec_key::generate();
    dp::acme::client first(http, key, options_for(ca));
    auto url = co_await first.account();
    CO_ASSERT_OK(url);
    dp::acme::client second(http, key, options_for(ca));
    auto again = co_await second.account();
    CO_ASSERT_OK(again);
    EXPECT_EQ(*again, *url);
  });
}

TEST(AcmePebble, AChallengeNobodyAnswersFailsWithTheReason) {
  challenge_server responder;
  // Pebble validates against a port where nothing listens.
  dp::test::pebble ca(dp::test::free_port());
  dp::test::run_async([&](net::any_io_executor ex) -> net::awaitable<void> {
    dp::http_client::client http(ex, trusting(ca));
    dp::acme::client acme(http, dp::acme::ec_key::generate(), options_for(ca));
    std::vector<std::string> names{"down.example.test"};
    auto issued = co_await acme.issue(names, responder);
    CO_ASSERT_TRUE(!issued);
    EXPECT_TRUE(issued.error().is(dp::errc::forbidden)) << issued.error().describe();
    EXPECT_NE(issued.error().message.find("down.example.test"), std::string::npos);
    EXPECT_NE(issued.error().message.find("connection"), std::string::npos)
        << issued.error().message;
    EXPECT_FALSE(acme.retry_after().has_value());
    EXPECT_EQ(responder.published(), 0u);
  });
}

}  // namespace
