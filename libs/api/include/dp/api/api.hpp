// The api-server's logic, testable without a process: REST handlers, auth, the log streams and
// metrics, handed to dp::http::server as a router.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dp/api/urls.hpp"
#include "dp/core/error.hpp"
#include "dp/dns/txt_resolver.hpp"
#include "dp/http/router.hpp"
#include "dp/proto/keys.hpp"
#include "dp/redis/types.hpp"

namespace dp::redis {
class client;
}
namespace dp::storage {
class object_store;
}

namespace dp::api {

struct options {
  proto::keys keys;
  site_options site;
  // Empty: local mode, loopback clients only.
  std::vector<std::string> api_tokens;
  // Origins besides the API's own whose pages may call it ("https://dash.example.com";
  // API_ALLOWED_ORIGINS). A request with any other Origin is refused (browser.hpp).
  std::vector<std::string> allowed_origins;
  // Local mode: host names besides localhost and IP addresses that the API answers to (API_HOSTS;
  // the listen address's name). Any other Host is a DNS-rebinding page: refused with 421.
  std::vector<std::string> api_hosts;
  std::vector<std::string> allowed_git_protocols{"https"};
  int64_t build_timeout_s = 900;
  // POST /v1/deployments with a tar.gz body (an uploaded directory); beyond: 413.
  size_t source_max_bytes = 100 * 1024 * 1024;
  // A forge webhook's body (POST /v1/webhooks/...); beyond: 413. GitHub sends up to 25 MB, a
  // push of many commits stays far below this.
  size_t webhook_max_bytes = 5 * 1024 * 1024;
  // Live log events waiting for one stream client; beyond this the client is dropped.
  size_t follower_queue_limit = 10'000;
  // The platform's retention policy (RETENTION_*), shown with a project's overrides applied;
  // the worker applies it.
  int64_t keep_deployments = 10;
  int64_t keep_production_days = 30;
  // host:port the domain ownership check connects to instead of the domain's own address
  // (DOMAIN_VERIFY_ADDRESS; tests, or a proxy reached on a private address). Empty: DNS.
  std::string domain_verify_address;
  // The DNS server the TXT ownership check asks (DNS_RESOLVER); none: the system's resolver.
  std::optional<dns::server_address> dns_resolver;
};

// Everything runs on one thread: the executor of the Redis client, the HTTP server's io_context.
class service {
 public:
  // `redis` is borrowed and must outlive the service; `pubsub` opens the hub's own connection.
  service(boost::asio::any_io_executor ex, redis::client& redis, redis::options pubsub,
          std::shared_ptr<storage::object_store> storage, options opts);
  ~service();
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  // Subscribes the log hub. An error means Redis did not confirm in time; the hub keeps trying.
  boost::asio::awaitable<dp::result<void>> start();
  // Ends the hub (streams still open end when the HTTP server stops).
  void stop();

  // Every route; the router refers to this service, which must outlive it.
  http::router routes();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace dp::api
