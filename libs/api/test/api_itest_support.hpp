// A real api-server (dp::api::service behind dp::http::server on port 0) against the harness
// redis-server and file storage in a temp dir, run on its own thread; requests are real HTTP.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/json/parse.hpp>

#include <memory>
#include <thread>

#include "dp/api/api.hpp"
#include "dp/core/id.hpp"
#include "dp/http/server.hpp"
#include "dp/proto/json.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/logbook.hpp"
#include "dp/state/records.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/storage/url.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"

namespace dp::api::test {

namespace asio = boost::asio;
namespace json = boost::json;

struct server_setup {
  std::vector<std::string> tokens;
  size_t follower_queue_limit = 10'000;
  size_t stream_queue_limit = 1024 * 1024;
  std::string listen_host = "127.0.0.1";
  size_t source_max_bytes = 100 * 1024 * 1024;
  size_t webhook_max_bytes = 5 * 1024 * 1024;
  std::string domain_verify_address;
  std::string dns_resolver;  // "ip:port" of the TXT check's DNS server; empty: the system's
};

class api_server {
 public:
  // Runs a coroutine on the server's thread (where the Redis client lives) and waits for it.
  template <class F>
  auto on_io(F f) {
    return asio::co_spawn(ioc_, f(), asio::use_future).get();
  }

  explicit api_server(server_setup setup = {}) {
    redis_opts_ = dp::test::redis_options(redis_server_);
    redis_opts_.command_timeout = std::chrono::milliseconds(3000);
    redis_ = std::make_unique<dp::redis::client>(ioc_.get_executor(), redis_opts_);
    dp::storage::storage_url url;
    url.root = files_.path();
    dp::storage::store_options so;
    so.fsync = false;
    storage_ = dp::storage::open_storage(ioc_.get_executor(), url, {}, so).value();
    options o;
    o.api_tokens = setup.tokens;
    o.allowed_git_protocols = {"https"};
    o.follower_queue_limit = setup.follower_queue_limit;
    o.build_timeout_s = 123;
    o.source_max_bytes = setup.source_max_bytes;
    o.webhook_max_bytes = setup.webhook_max_bytes;
    o.domain_verify_address = setup.domain_verify_address;
    if (!setup.dns_resolver.empty()) {
      o.dns_resolver = dp::dns::parse_server(setup.dns_resolver).value();
    }
    service_ = std::make_unique<service>(ioc_.get_executor(), *redis_, redis_opts_, storage_, o);
    records_ = std::make_unique<dp::state::records>(*redis_, o.keys);
    dp::http::server_options so2;
    so2.listen = {setup.listen_host, 0};
    so2.stream_queue_limit = setup.stream_queue_limit;
    so2.write_timeout = std::chrono::seconds(10);
    server_ = std::make_unique<dp::http::server>(ioc_, so2, service_->routes());
    server_->start().value();
    thread_ = std::thread([this] { server_->run(); });
    auto started = on_io([this]() { return service_->start(); });
    EXPECT_TRUE(started) << started.error().message;
  }

  ~api_server() {
    asio::post(ioc_, [this] {
      server_->stop(std::chrono::milliseconds(200), [this] {
        service_->stop();
        redis_->close();
      });
    });
    thread_.join();
  }

  uint16_t port() const { return server_->port(); }
  dp::state::records& records() { return *records_; }
  dp::redis::client& redis() { return *redis_; }
  const dp::redis::options& redis_options() const { return redis_opts_; }
  dp::storage::object_store& storage() { return *storage_; }
  const std::filesystem::path& files() const { return files_.path(); }
  asio::io_context& ioc() { return ioc_; }

  dp::test::http_response request(const std::string& method, const std::string& target,
                                  const std::string& body = {},
                                  std::map<std::string, std::string> headers = {}) {
    if (!body.empty()) {
      headers.emplace("content-type", "application/json");
    }
    auto r = dp::test::http_request(port(), method, target, body, headers);
    EXPECT_TRUE(r) << method << " " << target << ": " << r.error().message;
    return r ? *r : dp::test::http_response{};
  }

  // Moves a deployment through its statuses as a worker would.
  void drive(const std::string& id, std::vector<dp::proto::deployment_status> steps) {
    for (auto s : steps) {
      // A coroutine of its own: transition's defaulted reference arguments must outlive it.
      auto r = on_io([&]() -> asio::awaitable<dp::result<dp::state::transition_outcome>> {
        co_return co_await records_->transition(id, s);
      });
      ASSERT_TRUE(r && r->applied) << "transition to " << dp::proto::to_string(s);
    }
  }

 private:
  dp::test::redis_server redis_server_;
  dp::test::temp_dir files_{"dp-api-files"};
  asio::io_context ioc_{1};
  dp::redis::options redis_opts_;
  std::unique_ptr<dp::redis::client> redis_;
  std::shared_ptr<dp::storage::object_store> storage_;
  std::unique_ptr<service> service_;
  std::unique_ptr<dp::state::records> records_;
  std::unique_ptr<dp::http::server> server_;
  std::thread thread_;
};

inline json::value body_of(const dp::test::http_response& r) {
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  EXPECT_FALSE(ec) << "not JSON: " << r.body;
  return v;
}

inline std::string error_code_of(const dp::test::http_response& r) {
  auto v = body_of(r);
  if (!v.is_object() || !v.as_object().contains("error")) {
    ADD_FAILURE() << "no error body: " << r.body;
    return {};
  }
  return std::string(v.at("error").at("code").as_string());
}

}  // namespace dp::api::test
