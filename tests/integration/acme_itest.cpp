// Certificates for a custom domain end to end with the real binaries and Pebble: a domain added
// and verified through the api-server gets a certificate from the build-runner worker's issuer
// (HTTP-01 answered by the s3-reverse-proxy from the challenge store), the proxy serves the site
// over HTTPS with the chain Pebble signed, and a forced renewal swaps the certificate in the
// running proxy while a client keeps making new connections, none of which fails. When the
// challenge cannot be answered, the domain shows the CA's reason and when it is tried again. A
// verified domain is issued on the verify event, not at the issuer's next tick, and removing it
// removes its certificate from the store and from the running proxy. A certificate from a CA
// that runs OCSP gets its response from the worker, and the proxy staples it.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <fmt/format.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "dp/core/clock.hpp"
#include "dp/redis/client.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/live_deployment.hpp"
#include "dp/test/ocsp.hpp"
#include "dp/test/options.hpp"
#include "dp/tls/cert_store.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using dp::test::run_async;

const std::string platform_key_hex(64, 'd');
const std::string site = "<h1>shop over https</h1>";
const std::string fqdn = "shop.example.test";

using dp::now_ms;

// One HTTPS request on a new connection, as a browser would send it to the domain:
// curl --resolve, trusting only `root_file`. The exit code, then "<status> <leaf serial>" or
// curl's error.
struct https_result {
  bool ok = false;
  std::string serial;  // of the leaf certificate the proxy presented
  std::string output;
};

https_result https_get(uint16_t port, const std::filesystem::path& root_file) {
  auto r =
      dp::test::run({"curl", "-sS", "--max-time", "10", "--resolve",
                     fmt::format("{}:{}:127.0.0.1", fqdn, port), "--cacert", root_file.string(),
                     "-w", "\n%{http_code}\n%{certs}", fmt::format("https://{}:{}/", fqdn, port)});
  https_result out{.output = r.output};
  const std::string serial_tag = "Serial Number:";
  auto at = r.output.find(serial_tag);
  if (at != std::string::npos) {
    auto end = r.output.find('\n', at);
    out.serial = r.output.substr(at + serial_tag.size(), end - at - serial_tag.size());
  }
  out.ok = r.exit_code == 0 && r.output.starts_with(site + "\n200\n") && !out.serial.empty();
  return out;
}

class acme_e2e : public ::testing::Test {
 protected:
  // Pebble validates http-01 at the proxy, as DNS would lead it there, or, when
  // `challenge_reaches_proxy` is false, at a port where nothing answers. `interval_s` is the
  // issuer's ACME_INTERVAL_S.
  void start(bool challenge_reaches_proxy, const std::string& interval_s = "1") {
    std::map<std::string, std::string> env{
        {"REDIS_URL", redis_.url()},      {"STORAGE_URL", "file://" + files_.path().string()},
        {"BASE_DOMAIN", "platform.test"}, {"PLATFORM_KEY", platform_key_hex},
        {"LOG_FORMAT", "json"},           {"LOG_LEVEL", "info"}};
    auto proxy_env = env;
    proxy_env["PROXY_LISTEN"] = "127.0.0.1:0";
    proxy_env["ADMIN_LISTEN"] = "127.0.0.1:0";
    proxy_env["PROXY_TLS_LISTEN"] = "127.0.0.1:0";
    proxy_.emplace(dp::test::process_options{.argv = {PROXY_BIN}, .env = proxy_env});
    proxy_port_ = dp::test::reported_port(*proxy_, "listen");
    tls_port_ = dp::test::reported_port(*proxy_, "tls");
    ca_.emplace(challenge_reaches_proxy ? proxy_port_ : dp::test::free_port());
    root_file_ = certs_.path() / "pebble-root.pem";
    std::ofstream(root_file_) << ca_->root_pem();
    auto worker_env = env;
    worker_env["ACME_DIRECTORY_URL"] = ca_->directory_url();
    worker_env["ACME_CA_BUNDLE"] = ca_->ca_file().string();
    worker_env["ACME_EMAIL"] = "ops@example.test";
    worker_env["ACME_INTERVAL_S"] = interval_s;
    worker_env["WORKER_ID"] = fmt::format("acme-e2e-{}", ::getpid());
    worker_.emplace(
        dp::test::process_options{.argv = {BUILD_RUNNER_BIN, "worker"}, .env = worker_env});
    auto api_env = env;
    api_env["API_LISTEN"] = "127.0.0.1:0";
    // The ownership check reaches the domain through the proxy, as DNS would lead it there.
    api_env["DOMAIN_VERIFY_ADDRESS"] = "127.0.0.1:" + std::to_string(proxy_port_);
    // The TXT proof asks a loopback port nothing answers on, never the machine's resolver.
    api_env["DNS_RESOLVER"] = "127.0.0.1:" + std::to_string(dp::test::free_port());
    api_.emplace(dp::test::process_options{.argv = {API_SERVER_BIN}, .env = api_env});
    api_port_ = dp::test::reported_port(*api_);
  }

  dp::test::http_response api(const std::string& method, const std::string& target,
                              const std::string& body = {}) {
    return dp::test::json_request(api_port_, method, target, body);
  }

  // The project "shop", live, with the domain added and verified through the api.
  void serve_verified_domain() {
    auto project =
        api("POST", "/v1/projects", R"({"name":"shop","git_url":"https://example.com/s.git"})");
    ASSERT_EQ(project.status, 201) << project.body;
    deploy();
    auto added = api("POST", "/v1/projects/shop/domains", R"({"domain":")" + fqdn + R"("})");
    ASSERT_EQ(added.status, 201) << added.body;
    auto verified = api("POST", "/v1/projects/shop/domains/" + fqdn + "/verify");
    ASSERT_EQ(verified.status, 200) << verified.body << "\n" << api_->log_text();
  }

  // The domain's "certificate" object as the api shows it.
  boost::json::object certificate() {
    auto r = api("GET", "/v1/projects/shop/domains/" + fqdn);
    boost::system::error_code ec;
    auto v = boost::json::parse(r.body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("certificate")) {
      ADD_FAILURE() << "GET domain: " << r.status << " " << r.body;
      return {};
    }
    return v.as_object().at("certificate").as_object();
  }

  // A live deployment of project "shop" serving `site` at /.
  void deploy() { dp::test::deploy_index(redis_, files_.path(), "shop", site); }

  // One Redis command on a connection of its own; its reply.
  dp::redis::reply redis_exec(std::vector<std::string> command) {
    dp::redis::reply out;
    run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
      dp::redis::client redis(ioc.get_executor(), dp::test::redis_options(redis_));
      auto r = co_await redis.exec(std::move(command));
      CO_ASSERT_OK(r);
      out = *r;
      redis.close();
    });
    return out;
  }

  dp::test::redis_server redis_;
  dp::test::temp_dir files_{"dp-acme-files"};
  dp::test::temp_dir certs_{"dp-acme-certs"};
  std::optional<dp::test::child_process> proxy_;
  std::optional<dp::test::pebble> ca_;
  std::optional<dp::test::child_process> worker_;
  std::optional<dp::test::child_process> api_;
  std::filesystem::path root_file_;
  uint16_t proxy_port_ = 0, tls_port_ = 0, api_port_ = 0;
};

TEST_F(acme_e2e, issued_by_pebble_served_over_https_and_renewed_without_a_failed_request) {
  start(true);
  ASSERT_NO_FATAL_FAILURE(serve_verified_domain());

  // The worker's issuer gets the certificate into the store; the status and the renewal time
  // both come from there.
  boost::json::object issued;
  ASSERT_TRUE(dp::test::eventually(
      [&] {
        issued = certificate();
        return issued["status"] == "issued";
      },
      60s))
      << boost::json::serialize(issued) << "\n"
      << worker_->log_text();
  EXPECT_GT(issued["not_after"].to_number<int64_t>(), now_ms());
  // What the user sees of it: Pebble's intermediate signed it, the renewal is 30 days before
  // expiry, and Pebble runs no OCSP responder.
  EXPECT_TRUE(issued["issuer"].as_string().starts_with("CN=Pebble Intermediate CA"))
      << boost::json::serialize(issued);
  EXPECT_EQ(issued["next_attempt"].to_number<int64_t>(),
            issued["not_after"].to_number<int64_t>() - 30 * 86'400'000LL);
  EXPECT_TRUE(issued["error"].is_null());
  EXPECT_EQ(issued["ocsp"].at("status"), "not_available");

  // The proxy serves it: curl trusts only Pebble's root, so the chain is the one Pebble signed.
  https_result first;
  ASSERT_TRUE(dp::test::eventually([&] {
    first = https_get(tls_port_, root_file_);
    return first.ok;
  })) << first.output
      << "\n"
      << proxy_->log_text();
  auto chain = dp::test::run({"sh", "-c",
                              fmt::format("openssl s_client -connect 127.0.0.1:{} -servername {} "
                                          "-showcerts </dev/null 2>/dev/null",
                                          tls_port_, fqdn)});
  auto intermediate = ca_->intermediate_pem();
  auto body_of = [](const std::string& pem) {
    auto begin = pem.find('\n');
    auto end = pem.find("-----END");
    return pem.substr(begin + 1, end - begin - 1);
  };
  EXPECT_NE(chain.output.find(body_of(intermediate)), std::string::npos)
      << "the proxy does not send Pebble's intermediate:\n"
      << chain.output;

  // A client makes new connections throughout the renewal.
  std::atomic<bool> stop{false};
  std::atomic<int> requests{0};
  std::vector<std::string> failures;
  std::set<std::string> serials;
  std::thread client([&] {
    while (!stop) {
      auto r = https_get(tls_port_, root_file_);
      ++requests;
      if (r.ok) {
        serials.insert(r.serial);
      } else {
        failures.push_back(r.output);
      }
    }
  });
  // Forced renewal, once the client's first request is under way: the store's record of the
  // served certificate now expires within the 30 days (the worker renews by what is stored).
  dp::test::eventually([&] { return requests >= 1; });
  redis_exec({"HSET", dp::proto::keys{}.certificate(fqdn), "not_after_ms",
              std::to_string(now_ms() + 86'400'000)});
  https_result renewed;
  bool swapped = dp::test::eventually(
      [&] {
        renewed = https_get(tls_port_, root_file_);
        return renewed.ok && renewed.serial != first.serial;
      },
      60s);
  // A few more requests on the new certificate before the client stops.
  int seen = requests;
  dp::test::eventually([&] { return requests >= seen + 3; });
  stop = true;
  client.join();
  ASSERT_TRUE(swapped) << renewed.output << "\n" << worker_->log_text();
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed requests, first:\n"
                                << failures.front();
  EXPECT_TRUE(serials.contains(first.serial));
  EXPECT_TRUE(serials.contains(renewed.serial)) << requests << " requests";
  auto after = certificate();
  EXPECT_EQ(after["status"], "issued");
  EXPECT_GT(after["not_after"].to_number<int64_t>(), now_ms() + 86'400'000);
  RecordProperty("requests_during_renewal", requests.load());
}

TEST_F(acme_e2e, a_challenge_nobody_answers_shows_the_reason_and_the_next_attempt) {
  start(false);
  ASSERT_NO_FATAL_FAILURE(serve_verified_domain());
  boost::json::object failed;
  ASSERT_TRUE(dp::test::eventually(
      [&] {
        failed = certificate();
        return failed["status"] == "failed";
      },
      60s))
      << boost::json::serialize(failed) << "\n"
      << worker_->log_text();
  std::string error(failed["error"].as_string());
  EXPECT_NE(error.find("urn:ietf:params:acme:error:connection"), std::string::npos) << error;
  // The first backoff is five minutes.
  EXPECT_GT(failed["next_attempt"].to_number<int64_t>(), now_ms() + 240'000);
  EXPECT_TRUE(failed["issuer"].is_null());
  EXPECT_TRUE(failed["ocsp"].is_null());
  // No certificate: the handshake for the name fails, plain HTTP still serves the site.
  EXPECT_FALSE(https_get(tls_port_, root_file_).ok);
  auto plain = dp::test::run({"curl", "-sS", "--max-time", "10", "--resolve",
                              fmt::format("{}:{}:127.0.0.1", fqdn, proxy_port_),
                              fmt::format("http://{}:{}/", fqdn, proxy_port_)});
  EXPECT_EQ(plain.output, site);
}

// The issuer ticks once an hour: only the verify event can start the pass that issues.
TEST_F(acme_e2e, a_verified_domain_is_issued_at_once_and_its_removal_drops_the_certificate) {
  start(true, "3600");
  dp::proto::keys keys;
  // The worker follows events:acme before the domain is verified.
  ASSERT_TRUE(dp::test::eventually([&] {
    auto n = redis_exec({"PUBSUB", "NUMSUB", keys.acme_wake_channel()});
    return n.elements().size() == 2 && n.elements()[1].as_integer() == 1;
  })) << worker_->log_text();
  ASSERT_NO_FATAL_FAILURE(serve_verified_domain());
  boost::json::object issued;
  ASSERT_TRUE(dp::test::eventually(
      [&] {
        issued = certificate();
        return issued["status"] == "issued";
      },
      60s))
      << boost::json::serialize(issued) << "\n"
      << worker_->log_text();
  https_result served;
  ASSERT_TRUE(dp::test::eventually([&] {
    served = https_get(tls_port_, root_file_);
    return served.ok;
  })) << served.output;
  EXPECT_EQ(redis_exec({"SISMEMBER", keys.certificates(), fqdn}).as_integer(), 1);

  EXPECT_EQ(api("DELETE", "/v1/projects/shop/domains/" + fqdn).status, 204);
  EXPECT_EQ(redis_exec({"SISMEMBER", keys.certificates(), fqdn}).as_integer(), 0);
  EXPECT_EQ(redis_exec({"EXISTS", keys.certificate(fqdn)}).as_integer(), 0);
  // The proxy heard it: the handshake for the name fails now.
  EXPECT_TRUE(dp::test::eventually([&] { return !https_get(tls_port_, root_file_).ok; }))
      << proxy_->log_text();
}

// Pebble runs no OCSP responder: the certificate comes from the harness's CA (openssl ca) whose
// leaves name its `openssl ocsp` responder, stored as the issuer stores one (the domain is added
// but not verified, so Pebble issues nothing meanwhile). The api shows the staple, then, once the
// responder is gone, the failed refresh while the staple stays.
TEST_F(acme_e2e, a_certificate_of_a_ca_with_ocsp_is_stapled_with_the_workers_response) {
  start(false);
  auto ocsp_port = dp::test::free_port();
  dp::test::test_ca ocsp_ca(certs_.path(), "OCSP CA",
                            "http://127.0.0.1:" + std::to_string(ocsp_port));
  auto leaf = ocsp_ca.issue("leaf", {fqdn});
  auto responder = ocsp_ca.serve(ocsp_port);
  auto project =
      api("POST", "/v1/projects", R"({"name":"shop","git_url":"https://example.com/s.git"})");
  ASSERT_EQ(project.status, 201) << project.body;
  auto added = api("POST", "/v1/projects/shop/domains", R"({"domain":")" + fqdn + R"("})");
  ASSERT_EQ(added.status, 201) << added.body;
  run_async([&](asio::io_context& ioc) -> asio::awaitable<void> {
    dp::redis::client redis(ioc.get_executor(), dp::test::redis_options(redis_));
    dp::tls::cert_store store(redis, dp::proto::keys{},
                              *dp::tls::platform_key::from_hex(platform_key_hex));
    auto stored = co_await store.put(fqdn, leaf.chain_pem, leaf.key_pem);
    CO_ASSERT_OK(stored);
    redis.close();
  });
  std::string seen;
  ASSERT_TRUE(dp::test::eventually(
      [&] {
        seen = dp::test::run({"sh", "-c",
                              fmt::format("openssl s_client -connect 127.0.0.1:{} -servername {} "
                                          "-status -CAfile '{}' </dev/null 2>&1",
                                          tls_port_, fqdn, ocsp_ca.cert_file().string())})
                   .output;
        return seen.find("Cert Status: good") != std::string::npos;
      },
      60s))
      << seen << "\n"
      << worker_->log_text() << "\n"
      << proxy_->log_text();
  EXPECT_NE(seen.find("OCSP Response Status: successful"), std::string::npos) << seen;
  EXPECT_NE(seen.find("Verify return code: 0 (ok)"), std::string::npos) << seen;
  // The worker recorded when it asks again: half-way through the hour the responder gives.
  auto refresh_at = redis_exec({"HGET", dp::proto::keys{}.certificate(fqdn), "ocsp_refresh_at_ms"});
  EXPECT_GT(std::stoll(refresh_at.as_string()), now_ms() + 25 * 60'000);
  // The api shows the staple: the responder, the response's nextUpdate (the hour `openssl ocsp
  // -nmin 60` gives) and the next refresh; the certificate is the test CA's.
  auto shown = certificate();
  EXPECT_EQ(shown["status"], "issued");
  EXPECT_EQ(shown["issuer"], "CN=OCSP CA");
  auto ocsp = shown["ocsp"].as_object();
  EXPECT_EQ(ocsp["status"], "stapled") << boost::json::serialize(shown);
  EXPECT_EQ(ocsp["responder"].as_string(), "http://127.0.0.1:" + std::to_string(ocsp_port));
  EXPECT_GT(ocsp["next_update"].to_number<int64_t>(), now_ms() + 50 * 60'000);
  EXPECT_EQ(ocsp["next_refresh"].to_number<int64_t>(), std::stoll(refresh_at.as_string()));
  EXPECT_TRUE(ocsp["error"].is_null());

  // The responder goes away and the refresh is due now: the failure and its retry are shown,
  // and the last good response stays stapled.
  responder.reset();
  redis_exec({"HSET", dp::proto::keys{}.certificate(fqdn), "ocsp_refresh_at_ms", "0"});
  ASSERT_TRUE(dp::test::eventually(
      [&] {
        ocsp = certificate()["ocsp"].as_object();
        return !ocsp["error"].is_null();
      },
      60s))
      << boost::json::serialize(ocsp) << "\n"
      << worker_->log_text();
  EXPECT_EQ(ocsp["status"], "stapled");
  EXPECT_EQ(ocsp["failures"], 1);
  EXPECT_GT(ocsp["next_refresh"].to_number<int64_t>(), now_ms() + 240'000);
  EXPECT_FALSE(ocsp["error"].as_string().empty());
}

}  // namespace
